#!/usr/bin/env bash
# Every check CI runs, in order of cost: lint, types, template, build, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

step() { printf '\n== %s\n' "$*"; }

step "ruff"
ruff check .
ruff format --check .
step "mypy"
mypy
step "sam validate --lint"
sam validate --lint
step "sam build"
sam build > .aws-sam-build.log 2>&1 || { cat .aws-sam-build.log; exit 1; }
tail -n 3 .aws-sam-build.log
step "pytest"
# Two workers: much of the suite waits on subprocesses (DynamoDB Local, the runner), not CPU.
pytest -n 2 "$@"
