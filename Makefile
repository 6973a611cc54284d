# The targets a newcomer needs. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup services demo test sweep lint docs docs-serve fmt bench schema fuzz clean pg

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## validate the sample documents against the built-in modules
	$(BIN)/clearance validate data/samples/ ; test $$? -le 3

# The tests start real servers: PostgreSQL from the machine's initdb/pg_ctl (tests/pg.py) and
# Redis from Debian's redis-server package, installed here when missing (as root, as CI runs).
services:
	@command -v redis-server >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; else echo "redis-server is missing: sudo apt-get install redis-server (the Redis tests skip without it, and fail in CI)"; fi; }

test: $(STAMP) services  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

sweep: $(STAMP) services  ## the long variants marked slow (e.g. the rewrite's differential test over 3,000 texts)
	$(BIN)/python -m pytest -p no:cacheprovider -m slow $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, mypy, import contracts, and the gate files' own diagnostics
	$(BIN)/ruff check dsl gates engine tests scripts
	$(BIN)/ruff format --check dsl gates engine tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/clearance lint modules/

docs: $(STAMP)  ## the documentation site in site/ (gate catalogue and diagnostics generated from the code)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

fmt: $(STAMP)
	$(BIN)/ruff format dsl gates engine tests scripts

bench: $(STAMP)  ## speed table (Presidio and locust come from the bench extra)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

schema: $(STAMP)  ## re-export the report JSON Schema
	$(BIN)/python -c "import json,engine.report as r; print(json.dumps(r.report_json_schema(), indent=2))" > engine/schema/report.schema.json

fuzz: $(STAMP)  ## the gate-compiler fuzz suite at length (CI runs it with FUZZ_EXAMPLES=60)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} CONTRACT_EXAMPLES=$${CONTRACT_EXAMPLES:-300} $(BIN)/python -m pytest -p no:cacheprovider tests/reliability/test_gate_fuzz.py tests/reliability/test_api_contract.py

pg: $(STAMP)  ## a throwaway PostgreSQL for the audit log in data/runtime/pg; prints the CLEARANCE_AUDIT_URL to export (PG=stop stops it)
	$(BIN)/python tests/pg.py $${PG:-start} --dir data/runtime/pg

clean:
	rm -rf $(VENV) data/runtime build site *.egg-info
