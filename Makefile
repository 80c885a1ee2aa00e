# autospace: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
DATASPACE_DIR ?= ./dataspace

.PHONY: setup tools run test test-sqlite test-postgres postgres lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# External tools the tests use, from the npm registry: anvil (a real EVM node) and solc.
tools: .tools/.installed
.tools/.installed: deploy/tools/package.json
	mkdir -p .tools
	cp deploy/tools/package.json .tools/package.json
	cd .tools && npm install --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(BIN)/autospace dataspace up $(DATASPACE_DIR)

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start" >&2; exit 1

test-sqlite: setup tools
	AUTOSPACE_TEST_DB=sqlite $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider --junitxml=.test-results/sqlite.xml

test-postgres: setup tools postgres
	AUTOSPACE_TEST_DB=$(PG_URL) $(BIN)/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider --junitxml=.test-results/postgres.xml

# The whole suite on SQLite, then again on PostgreSQL; the last line sums both runs.
test: setup tools postgres
	@mkdir -p .test-results; rm -f .test-results/*.xml; status=0; \
	$(MAKE) --no-print-directory test-sqlite || status=1; \
	$(MAKE) --no-print-directory test-postgres || status=1; \
	$(BIN)/python -m tests.summary .test-results/sqlite.xml .test-results/postgres.xml || status=1; \
	exit $$status

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .tools .test-results build *.egg-info
