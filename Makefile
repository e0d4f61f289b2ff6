# pomreport: `make run` serves the demo, `make test` runs the suite. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# GraphiQL's browser files, from the npm registry at install time (vendor/package-lock.json).
VENDOR_ASSETS := service/web/vendor/.installed
HTTP_AUDIT := tests/http_audit/node_modules/.installed
CALLBACKS ?= 1000000
PYTEST_ARGS ?=

.PHONY: install run test lint check schema trusted-documents bench bench-peers clean

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "pomreport needs Python 3.11 or newer; set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(INSTALLED)

$(VENDOR_ASSETS): vendor/package.json vendor/package-lock.json service/web/assets.py | $(INSTALLED)
	@command -v npm > /dev/null \
		|| { echo "GraphiQL's files come from the npm registry: install Node.js and npm"; exit 1; }
	cd vendor && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	$(BIN)/python vendor/copy_assets.py
	@touch $@

install: $(INSTALLED) $(VENDOR_ASSETS)

# graphql-http's server audits, which the suite runs against `pomreport serve`.
$(HTTP_AUDIT): tests/http_audit/package.json tests/http_audit/package-lock.json
	cd tests/http_audit && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

run: install
	$(BIN)/pomreport migrate
	$(BIN)/pomreport seed --callbacks 50000 --if-empty
	$(BIN)/pomreport serve --host 127.0.0.1 --port 8000

# Two processes for most of the suite (2 cores); the tests marked serial (they measure time
# or load the machine themselves) after it, alone.
test: install $(HTTP_AUDIT)
	$(BIN)/pytest -n 2 -m "not serial" $(PYTEST_ARGS)
	$(BIN)/pytest -m serial $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

schema: install
	$(BIN)/pomreport export-schema > schema.graphql

# The shipped manifest of trusted documents (allow-list mode): the report page's documents and
# the README's examples.
trusted-documents: install
	$(BIN)/pomreport trusted-documents build service/web/static/documents docs/queries \
		--output service/graph/trusted_documents.json

bench: install
	$(BIN)/python bench/seed_load.py --callbacks $(CALLBACKS)

# pomreport beside PostGraphile 5 on the seedbench database; Node 22 comes from npm (node@22).
# Flags through PEERS_ARGS, e.g. make bench-peers PEERS_ARGS='--scenarios a --duration 5'.
bench-peers: install
	@test -d bench/peers/node_modules || (cd bench/peers && npm ci --no-audit --no-fund)
	@bench/peers/node_modules/.bin/node --version > /dev/null \
		|| { echo "bench/peers/node_modules/.bin/node does not run; rm -rf bench/peers/node_modules and retry"; exit 1; }
	$(BIN)/python bench/peers/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) vendor/node_modules service/web/vendor tests/http_audit/node_modules pomreport.db pomreport.db-wal pomreport.db-shm
