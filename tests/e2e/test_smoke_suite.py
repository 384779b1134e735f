"""``make smoke`` against the local runner, as an operator runs it against a deployed stack:
every check passes, the report says so, and what the run created is cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from aigw_local import template as tpl
from tests.e2e.conftest import Runner
from tests.smoke.conftest import TEAM, UNPAID_TEAM


def _smoke(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "-p", "no:cacheprovider", "-q"],
        cwd=tpl.ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_smoke_suite_passes_against_a_gateway_and_cleans_up(runner: Runner) -> None:
    done = _smoke({"AIGW_URL": runner.base_url, "AIGW_ADMIN_KEY": runner.admin_key})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = done.stdout.split("aigw smoke report:", 1)[1]
    for check in ("chat_completion", "streamed_chat_completion", "anthropic_messages", "prompt_api", "402"):
        assert any(check in line and "PASSED" in line for line in report.splitlines()), check
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    # Keys revoked, plans deleted, teams back on the gateway's default.
    for team in (TEAM, UNPAID_TEAM):
        keys = admin.get(f"/admin/teams/{team}/keys").json()["data"]
        assert keys
        assert all(k["status"] == "revoked" for k in keys), keys
        plan = admin.get(f"/admin/teams/{team}/billing").json()["plan_id"]
        assert not (plan or "").startswith("aigw-smoke"), plan
    plans = [p["plan_id"] for p in admin.get("/admin/plans").json()["data"]]
    assert not [p for p in plans if p.startswith("aigw-smoke")]


def test_without_a_url_the_smoke_suite_is_skipped() -> None:
    done = _smoke({"AIGW_URL": "", "AIGW_ADMIN_KEY": ""})
    assert done.returncode == 0, done.stdout[-2000:]
    assert "skipped" in done.stdout
    assert "passed" not in done.stdout
