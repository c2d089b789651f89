# Quick start: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv with Python 3.11+ and install the project on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all lint lock bench bench-text clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bulksend demo

test: $(STAMP)
	$(BIN)/pytest -q

test-all: $(STAMP)
	$(BIN)/pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/lock.py --check
	$(BIN)/check-jsonschema --schemafile deploy/compose-spec.json docker-compose.yml

# requirements.lock (what the image installs) from pyproject.toml's dependencies: resolves
# against PyPI, so only here, never in CI (lint checks it offline).
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

bench-text: $(STAMP)
	$(BIN)/python bench/sms_text.py

clean:
	rm -rf $(VENV) .bulksend .pytest_cache .mypy_cache .ruff_cache
