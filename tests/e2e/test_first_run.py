"""A newcomer's first run of ``make dev`` and the ``aigw`` CLI against it (issue 16)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e


def _aigw(runner: Runner, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``aigw`` as a user runs it after copying the runner's export line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIGW_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "aigw.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def _exports(runner: Runner) -> dict[str, str]:
    """The variables of the banner's ``export AIGW_URL=... AIGW_ADMIN_KEY=...`` line."""
    line = next(line for line in runner.output if line.strip().startswith("export AIGW_URL="))
    return dict(part.split("=", 1) for part in line.split()[1:])


def test_the_banner_gives_the_cli_its_url_and_the_dynamodb_endpoint(runner: Runner) -> None:
    # The session runner listens on a PORT other than 3000, like PORT=3417 make dev.
    exports = _exports(runner)
    assert exports == {"AIGW_URL": runner.base_url, "AIGW_ADMIN_KEY": runner.admin_key}
    text = "".join(runner.output)
    assert f"aigw bootstrap --endpoint {runner.dynamodb_endpoint} --table aigw-local" in text
    assert (
        f"DynamoDB Local:  {runner.dynamodb_endpoint} (table aigw-local; listening on 127.0.0.1 only)" in text
    )
    assert f"Stripe:          simulated at {runner.base_url}/_stripe/" in text

    # What the banner says works as is: the CLI reaches this runner, bootstrap its DynamoDB Local.
    teams = _aigw(runner, "teams", "list", env=exports)
    assert teams.returncode == 0, teams.stderr
    assert "demo" in teams.stdout
    booted = _aigw(
        runner, "bootstrap", "--endpoint", runner.dynamodb_endpoint, "--table", "aigw-local", "--json"
    )
    assert booted.returncode == 0, booted.stderr
    secret = json.loads(booted.stdout)["secret"]
    me = httpx.get(runner.base_url + "/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["role"] == "admin"


def test_the_cli_reads_like_a_cli(runner: Runner) -> None:
    env = _exports(runner)
    assert _aigw(runner, "teams", "create", "cli-first", "--name", "CLI first", env=env).returncode == 0
    shown = _aigw(runner, "teams", "show", "cli-first", env=env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^name\s+CLI first$", shown.stdout, re.MULTILINE)
    assert re.search(r"^created_at\s+20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$", shown.stdout, re.MULTILINE)

    made = _aigw(
        runner, "keys", "create", "--team", "cli-first", "--models", "openai/*,mock/echo", "--json", env=env
    )
    key = json.loads(made.stdout)["secret"]
    listed = _aigw(runner, "keys", "list", "--team", "cli-first", env=env).stdout
    assert "openai/*, mock/echo" in listed
    assert "['" not in listed
    assert re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed)
    assert not re.search(r"\b1[7-9]\d{8}\b", listed)  # no epoch seconds

    # Options after the command, as for reports: the team's own key shows its own API.
    spec = {
        "slug": "cli-first-api",
        "title": "CLI first",
        "model": "mock/echo",
        "prompt": {"user": "{{text}}"},
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
    created = _aigw(
        runner, "apis", "create", "--spec", json.dumps(spec), "--key", key, "--url", runner.base_url
    )
    assert created.returncode == 0, created.stderr
    shown = _aigw(runner, "apis", "show", "cli-first-api", "--key", key, "--url", runner.base_url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["owner_team"] == "cli-first"
    usage = _aigw(runner, "reports", "usage", "--key", key, "--url", runner.base_url)
    assert usage.returncode == 0, usage.stderr


def test_a_port_in_use_is_one_line_before_anything_starts(runner: Runner) -> None:
    port = runner.base_url.rsplit(":", 1)[1]
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PORT": port},
    )
    assert second.returncode == 1
    assert second.stderr.strip().count("\n") == 0, second.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
    assert "Traceback" not in second.stderr
    assert "DynamoDB Local" not in second.stdout  # nothing was started
    assert time.monotonic() - started < 30
