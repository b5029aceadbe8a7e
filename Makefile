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
	$(BIN)/ruff check engine tests bench harness
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/engine rules check rulesets
	$(BIN)/engine rules test rulesets
	$(BIN)/coverage run -m pytest -q -p no:cacheprovider
	@$(BIN)/coverage report --format=total | sed 's/.*/coverage: &% of engine\/ lines run by the tests (this process; servers the tests start are not counted)/'

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Soak (not in CI; hours): a million rule evaluations, then a million simulated messages
# through one `engine serve` (server RSS sampled every 10%), then a long randomized fuzz of
# the MLLP listener. Each fails unless memory stays flat / the listener survives.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python bench/soak_rules.py
	$(BIN)/python bench/soak_ingest.py --messages 1000000
	ENGINE_FUZZ_EXAMPLES=5000 $(BIN)/pytest -q -p no:cacheprovider tests/test_hostile_hl7.py

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm
