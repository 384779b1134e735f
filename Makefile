# The README's commands: `make dev` runs the gateway, `make test` runs every check.
# Both set the machine up first (idempotent): nothing is installed by hand.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
# The region the shell chose, if any: deploy, bootstrap and smoke use the shell's AWS
# configuration (AWS_REGION, the profile's region), never the local default below.
SHELL_AWS_DEFAULT_REGION := $(AWS_DEFAULT_REGION)
export AWS_DEFAULT_REGION ?= us-east-1
AWS_SHELL = $(if $(SHELL_AWS_DEFAULT_REGION),,env -u AWS_DEFAULT_REGION)

# Deploying: `make deploy STAGE=dev`, `make bootstrap STAGE=dev`, `make smoke ...` (README, "Deploy").
STAGE ?= dev

.PHONY: setup setup-python dev test lint typecheck template unit integration e2e bench screenshots catalog \
	clean deploy bootstrap smoke aws-calls

setup:
	@bash scripts/setup.sh

# The virtualenv alone: all that deploying and checking a stack need (no Java, no Chromium).
setup-python:
	@bash scripts/setup.sh --python-only

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

# Build and deploy stack aigw-$(STAGE) with samconfig.toml's [$(STAGE)] settings: no prompts
# (prod shows its change set and asks before applying it).
deploy: setup-python
	sam validate --lint
	sam build --config-env $(STAGE)
	$(AWS_SHELL) sam deploy --config-env $(STAGE)

# The first admin key of stage $(STAGE), written straight into its table (shown once).
bootstrap: setup-python
	$(AWS_SHELL) python scripts/stack.py bootstrap $(STAGE)

# End-to-end checks of a deployed gateway through the official SDKs (tests/smoke); AIGW_URL
# defaults to stage $(STAGE)'s ApiBaseUrl when AIGW_ADMIN_KEY is given; skipped without either.
smoke: setup-python
	@url="$(AIGW_URL)"; \
	if [ -z "$$url" ] && [ -n "$(AIGW_ADMIN_KEY)" ]; then url=$$($(AWS_SHELL) python scripts/stack.py output $(STAGE) ApiBaseUrl) || exit 1; fi; \
	AIGW_URL="$$url" AIGW_ADMIN_KEY="$(AIGW_ADMIN_KEY)" pytest tests/smoke -p no:cacheprovider -v

# Record which AWS calls each function's handler makes over the unit and integration suites
# into tests/aws_calls.json (tests/helpers/aws_calls.py); template tests then compare.
aws-calls: setup
	AIGW_WRITE_AWS_CALLS=1 pytest -n 2 tests/unit tests/integration

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
