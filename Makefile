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

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	cd benchmarks && ../$(BIN)/python ingest.py && ../$(BIN)/python outbound.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
