"""``aigw reports usage`` against the local runner, with a team key and with the admin key."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import httpx
import openai

from tests.e2e.conftest import Runner


def _aigw(runner: Runner, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "aigw.cli", "--url", runner.base_url, "reports", "usage", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIGW_")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_reports_usage_as_csv_json_and_table(runner: Runner) -> None:
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    assert admin.post("/admin/teams", json={"team_id": "cli-reports"}).status_code == 201
    secret = admin.post("/admin/teams/cli-reports/keys", json={"name": "cli"}).json()["secret"]
    client = openai.OpenAI(api_key=secret, base_url=runner.base_url + "/v1", max_retries=0)
    for text in ("a", "bb", "ccc"):
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": text}])
    assert runner.settled_report(secret, "cli-reports", at_least=3)["totals"]["calls"] == 3

    rows = list(csv.DictReader(io.StringIO(_aigw(runner, "--key", secret, "--group-by", "model", "--csv"))))
    assert [(r["model"], r["calls"]) for r in rows] == [("mock/echo", "3")]

    as_admin = json.loads(_aigw(runner, "--key", runner.admin_key, "--team", "cli-reports", "--json"))
    assert as_admin["team_id"] == "cli-reports"
    assert as_admin["totals"]["calls"] == 3
    assert as_admin["totals"]["cost_micro_usd"] == int(rows[0]["cost_micro_usd"])

    table = _aigw(runner, "--key", secret, "--group-by", "key")
    assert "cli-reports" in table.splitlines()[0]
    assert "total" in table

    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "aigw.cli",
            "--url",
            runner.base_url,
            "reports",
            "usage",
            "--key",
            secret,
            "--team",
            "demo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "403" in refused.stderr
