# `make demo` and `make test` are the two commands the README promises; both
# create .venv on first use so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mobilepack demo --out dist

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) dist runs
