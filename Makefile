# The two commands of the README's Quick start are `make run` and `make test`.
# Everything goes into a local virtualenv (.venv); nothing is installed system-wide.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean help

help:
	@echo "make run    - install into .venv, create the demo village (first run), start the node"
	@echo "make test   - install test tools into .venv; lint (ruff, mypy, import-linter) and run the whole test suite"
	@echo "make bench  - run the benchmarks (SQLite and PostgreSQL) and print the figures"
	@echo "make lint   - ruff, mypy, and import-linter (imports point down the floors)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Sou needs Python 3.11 or newer (found: $$($(PYTHON) --version))."; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv: on Debian/Ubuntu, \
	  install the python3-venv package."; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt tests/plugin_example/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps -e tests/plugin_example
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/sou init --demo
	$(BIN)/sou serve

# The suite runs on both cores (pytest-xdist); worksteal: a worker that runs out of tests
# takes some of the other's, so that no long file is left to finish alone.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ledger runtime web members node wallet_api merchants pos audits plugins
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist worksteal

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ledger runtime web members node wallet_api merchants pos audits plugins
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
