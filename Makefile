# Two commands for a newcomer: `make run` (worker + beat on embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

MODULES := $(sort $(shell find shared worker bench -name '*.py'))
MODULE_LIST := $(VENV)/.modules

.PHONY: always

# Strict editable install: `dashcache` is a tree of links to shared/, worker/ and bench/ (mypy
# reads it; docs/layout.md). The module list file changes only when a module is added or
# removed, and then the next make links the tree again.
$(MODULE_LIST): always
	@mkdir -p $(VENV)
	@echo '$(MODULES)' | cmp -s - $@ || echo '$(MODULES)' > $@

$(STAMP): pyproject.toml $(MODULE_LIST)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m dashcache.worker

test: $(STAMP)
	$(BIN)/ruff check shared worker bench examples tests
	$(BIN)/ruff format --check shared worker bench examples tests
	$(BIN)/mypy -p dashcache -p examples
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check shared worker bench examples tests
	$(BIN)/mypy -p dashcache -p examples

# Read-path cost of metrics (needs Redis on REDIS_URL; prints medians, asserts nothing).
bench: $(STAMP)
	$(BIN)/python -m dashcache.bench.metrics_overhead

format: $(STAMP)
	$(BIN)/ruff format shared worker bench examples tests
	$(BIN)/ruff check --fix shared worker bench examples tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
