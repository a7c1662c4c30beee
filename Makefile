# `make demo` and `make test` are the two commands the README promises; both
# create .venv on first use so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean system-deps arm64

# Tests open report.html in Debian's chromium through chromedriver, and compile the Android
# app's pure-Kotlin preprocessing with Debian's kotlin compiler to check it on the JVM.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) arm64
	$(BIN)/mobilepack demo --out dist

# bench's ARM64 column: LiteRT's aarch64 build under Debian's qemu-user-static; the setup fetches the
# rest (aarch64 CPython, the pinned wheels) into a cache folder once, and does nothing when it is there.
arm64: $(STAMP)
	@command -v qemu-aarch64-static >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq qemu-user-static >/dev/null; }
	$(BIN)/mobilepack arm64 setup

system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v kotlinc >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver kotlin >/dev/null; }

test: $(STAMP) system-deps arm64
	$(BIN)/cog --check docs/cli-reference.md
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

clean:
	rm -rf $(VENV) dist runs
