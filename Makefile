# The README's commands: `make dev` runs the gateway, `make test` runs every check.
# Both set the machine up first (idempotent): nothing is installed by hand.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: setup dev test lint typecheck template unit integration e2e bench screenshots catalog clean

setup:
	@bash scripts/setup.sh

dev: setup
	python -m aigw_local

test: setup
	@bash scripts/test.sh

lint: setup
	ruff check . && ruff format --check .

typecheck: setup
	mypy

template: setup
	sam validate --lint && sam build

unit: setup
	pytest tests/unit

integration: setup
	pytest tests/integration

e2e: setup
	pytest tests/e2e

screenshots: setup
	AIGW_UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_portal_browser.py tests/e2e/test_billing_browser.py

# The built-in catalog, generated from genai-prices (pinned in requirements-dev.txt).
catalog: setup
	python scripts/gen_catalog.py

bench: setup
	python bench/run.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
