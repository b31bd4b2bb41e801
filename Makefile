# Every user-facing command of the project. Each target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AIRFLOW_VERSION ?= 3.3.2
STAMP := $(VENV)/.installed

.PHONY: venv postgres test lint demo bench bench-small bench-guard clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

postgres:  ## PostgreSQL server binaries (initdb, pg_ctl, postgres_fdw) from the system packages if missing
	bash scripts/ensure-postgres.sh

LINT_PATHS := airflow_provider_confiture dags tests benchmarks scripts

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

test: venv postgres lint  ## the test command (CI runs exactly this)
	$(BIN)/python -m pytest -q

demo: venv postgres  ## the example migration DAG end to end on two throwaway clusters (DEMO_ARGS="--keep --rows N")
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

bench: venv postgres  ## side-by-side benchmarks (full size): copy methods, then many small tables vs pgcopydb
	$(BIN)/python benchmarks/bench.py --out bench-results.json
	command -v pgcopydb >/dev/null 2>&1 || bash scripts/ensure-pgcopydb.sh
	$(BIN)/python benchmarks/bench_many_tables.py --out bench-many-tables.json

bench-guard: venv postgres  ## what the target guard costs an insert-heavy application (guarded vs plain table)
	$(BIN)/python benchmarks/bench_guard.py --out bench-guard.json

clean:
	rm -rf $(VENV) .work
