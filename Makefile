# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/engine demo

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench

test: lint
	$(BIN)/engine rules check rulesets
	$(BIN)/engine rules test rulesets
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Rules-engine soak: a million evaluations, RSS sampled every 50,000; fails unless flat.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python bench/soak_rules.py

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm
