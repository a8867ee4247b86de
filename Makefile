# practice-events: the two set-up commands are `make run` and `make test`.
# Both create or update the virtual environment first; nothing is installed by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: run test venv lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

## Run the service on its embedded default (SQLite file under var/, demo district).
run: $(STAMP)
	$(BIN)/practice-events serve --demo

## Lint, type-check and run the whole test suite (PostgreSQL and Tansu are started as needed;
## Debian's Chromium is installed for the dashboard tests if it is missing). pytest runs in
## PYTEST_WORKERS processes (pytest-xdist; each takes a whole file, or all the tests sharing the
## read-API environment, at a time: see tests/conftest.py); the tests marked `serial` (they
## restart the whole PostgreSQL cluster) run afterwards, by themselves (exit code 5, "no test
## selected", counts as success there). PYTEST_WORKERS=0 runs the first part in one process.
test: $(STAMP) lint typecheck
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS); \
	parallel=$$?; \
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS); serial=$$?; \
	[ $$serial -eq 5 ] && serial=0; \
	[ $$parallel -ne 0 ] && exit $$parallel; exit $$serial

lint: $(STAMP)
	$(BIN)/ruff check src consumers projections tests bench
	$(BIN)/ruff format --check src consumers projections tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-wrk.sh || echo "bench: no wrk; bench/api.py falls back to its Python load generator" >&2
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
