# TagStudio — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint format services browser bench-import clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Embedded mode: SQLite under var/, a local Celery worker on a file-based queue, the demo catalog,
# a first model, and the app on http://127.0.0.1:8000.
run: install
	@mkdir -p var
	@test -s var/secret_key || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" $(BIN)/python manage.py run_embedded

# The whole suite against the real PostgreSQL and Redis on localhost (overridable: DATABASE_URL,
# CELERY_BROKER_URL); starts them when installed but down, installs Debian chromium for browser tests.
test: install services browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install services
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

services:
	@bash .ci/services

browser:
	@bash .ci/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var/ .pytest_cache .ruff_cache
