# Two commands for a newcomer: `make run` (worker + beat on embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m worker

test: $(STAMP)
	$(BIN)/ruff check shared worker bench examples tests
	$(BIN)/ruff format --check shared worker bench examples tests
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check shared worker bench examples tests
	$(BIN)/mypy

# Read-path cost of metrics (needs Redis on REDIS_URL; prints medians, asserts nothing).
bench: $(STAMP)
	$(BIN)/python -m bench.metrics_overhead

format: $(STAMP)
	$(BIN)/ruff format shared worker bench examples tests
	$(BIN)/ruff check --fix shared worker bench examples tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
