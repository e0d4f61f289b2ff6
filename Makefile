# pomreport: `make run` serves the demo, `make test` runs the suite. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CALLBACKS ?= 1000000
PYTEST_ARGS ?=

.PHONY: install run test lint check schema bench clean

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "pomreport needs Python 3.11 or newer; set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

run: install
	$(BIN)/pomreport migrate
	$(BIN)/pomreport seed --callbacks 50000 --if-empty
	$(BIN)/pomreport serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

schema: install
	$(BIN)/pomreport export-schema > schema.graphql

bench: install
	$(BIN)/python bench/seed_load.py --callbacks $(CALLBACKS)

clean:
	rm -rf $(VENV) pomreport.db pomreport.db-wal pomreport.db-shm
