# `make demo` and `make test` are the two commands the README promises; both
# create .venv on first use so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean system-deps

# Tests open report.html in Debian's chromium through chromedriver, and compile the Android
# app's pure-Kotlin preprocessing with Debian's kotlin compiler to check it on the JVM.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mobilepack demo --out dist

system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v kotlinc >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver kotlin >/dev/null; }

test: $(STAMP) system-deps
	$(BIN)/cog --check docs/cli-reference.md
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) dist runs
