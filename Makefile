# helpdeskd: `make run` starts the daemon on the embedded defaults, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PostgreSQL half of the suite; it skips (with the reason) where no server answers.
HELPDESKD_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
export HELPDESKD_TEST_PG_URL

.PHONY: install run test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/helpdeskd init
	$(BIN)/helpdeskd migrate
	$(BIN)/helpdeskd serve

# The suite runs in this many processes (pytest-xdist): the cores, at most 4 (each
# process starts daemons with PostgreSQL connections of their own).
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: install
	$(BIN)/pytest -n $(TEST_JOBS) $(PYTEST_ARGS)

bench: install
	cd benchmarks && ../$(BIN)/python ingest.py && ../$(BIN)/python outbound.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
