"""A deployed gateway, checked the way its users meet it: ``make smoke AIGW_URL=<ApiBaseUrl>
AIGW_ADMIN_KEY=<admin key>`` (skipped without AIGW_URL).

What a run creates, and what it leaves:

- teams ``aigw-smoke`` and ``aigw-smoke-unpaid`` (kept: teams cannot be deleted; the next run
  reuses them);
- a key for each (revoked at the end);
- plans ``aigw-smoke-<run>`` (10M tokens a month) and ``aigw-smoke-<run>-empty`` (no tokens), assigned to
  those teams, then unassigned and deleted at the end;
- the prompt API ``aigw-smoke``, a private draft of ``aigw-smoke`` (kept and reused: only that
  team sees it; each run saves it again as a new version).

Calls go to ``AIGW_SMOKE_MODEL`` (``mock/echo`` by default: no vendor, no cost).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

TEAM = "aigw-smoke"
UNPAID_TEAM = "aigw-smoke-unpaid"
API_SLUG = "aigw-smoke"


@dataclass
class Smoke:
    url: str
    admin: httpx.Client
    model: str
    run: str
    team_key: str = ""
    unpaid_key: str = ""
    keys: list[tuple[str, str]] = field(default_factory=list)  # (team, key id) to revoke
    created: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)

    def as_admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.admin.request(method, path, **kwargs)

    def as_team(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.team_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)


_report: dict[str, Any] = {}


def _ok(response: httpx.Response, *allowed: int) -> httpx.Response:
    if response.status_code not in (200, 201, *allowed):
        where = f"{response.request.method} {response.request.url.path}"
        raise AssertionError(f"{where}: {response.status_code} {response.text[:300]}")
    return response


def _key(smoke: Smoke, team: str, plan: str) -> str:
    _ok(smoke.as_admin("POST", "/admin/teams", json={"team_id": team, "name": "aigw smoke checks"}), 409)
    _ok(smoke.as_admin("PUT", f"/admin/teams/{team}/plan", json={"plan_id": plan}))
    reply = _ok(smoke.as_admin("POST", f"/admin/teams/{team}/keys", json={"name": f"smoke {smoke.run}"}))
    key = reply.json()
    smoke.keys.append((team, key["key_id"]))
    smoke.created.append(f"key {key['key_id']} of team {team}")
    return str(key["secret"])


@pytest.fixture(scope="session")
def smoke() -> Iterator[Smoke]:
    url = os.environ.get("AIGW_URL", "").rstrip("/")
    if not url:
        pytest.skip("no deployed gateway to check: set AIGW_URL (and AIGW_ADMIN_KEY)")
    admin_key = os.environ.get("AIGW_ADMIN_KEY", "")
    if not admin_key:
        pytest.fail("AIGW_ADMIN_KEY is needed with AIGW_URL (an admin key of that gateway)")
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)
    run = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)
    smoke = Smoke(url, admin, os.environ.get("AIGW_SMOKE_MODEL", "mock/echo"), run)
    _report.update(url=url, model=smoke.model, run=run, smoke=smoke)
    plan, empty = f"aigw-smoke-{run}", f"aigw-smoke-{run}-empty"
    try:
        limits = {"name": "aigw smoke checks", "monthly_tokens": 10_000_000, "requests_per_minute": 600}
        _ok(smoke.as_admin("PUT", f"/admin/plans/{plan}", json=limits))
        smoke.created.append(f"plan {plan}")
        no_tokens = {"name": "aigw smoke: no tokens", "monthly_tokens": 0}
        _ok(smoke.as_admin("PUT", f"/admin/plans/{empty}", json=no_tokens))
        smoke.created.append(f"plan {empty}")
        smoke.team_key = _key(smoke, TEAM, plan)
        smoke.unpaid_key = _key(smoke, UNPAID_TEAM, empty)
        yield smoke
    finally:
        _clean(smoke, plan, empty)
        admin.close()


def _clean(smoke: Smoke, *plans: str) -> None:
    for team, key_id in smoke.keys:
        reply = smoke.as_admin("DELETE", f"/admin/teams/{team}/keys/{key_id}")
        smoke.cleaned.append(f"key {key_id} revoked ({reply.status_code})")
    for team in (TEAM, UNPAID_TEAM):
        smoke.as_admin("PUT", f"/admin/teams/{team}/plan", json={"plan_id": None})
    for plan in plans:
        reply = smoke.as_admin("DELETE", f"/admin/plans/{plan}")
        smoke.cleaned.append(f"plan {plan} deleted ({reply.status_code})")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    smoke = _report.get("smoke")
    if smoke is None:
        return
    stats = terminalreporter.stats
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", f"aigw smoke report: {_report['url']}")
    write(f"run {_report['run']}, model {_report['model']}")
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in stats.get(outcome, []):
            if getattr(report, "when", "call") in ("call", "setup") and hasattr(report, "nodeid"):
                if outcome == "passed" and report.when != "call":
                    continue
                write(f"  {outcome.upper():7} {report.nodeid.split('::')[-1]}")
    write("created: " + (", ".join(smoke.created) or "nothing"))
    write("cleaned up: " + (", ".join(smoke.cleaned) or "nothing"))
