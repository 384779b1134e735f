"""The local runner as a user starts it (``python -m aigw_local``), in its own process, with a
fake OpenAI upstream on loopback; tests drive it with the official SDKs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from aigw.usage.records import UsageRecord
from aigw_local.dynamodb_local import free_port
from tests.helpers.browser import browser, page  # noqa: F401 - the browser tests' fixtures
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion
from tests.helpers.fake_vendors import VendorServer
from tests.helpers.stripe import WEBHOOK_SECRET


def usage_items_today(dynamodb_endpoint: str, team_id: str) -> list[dict[str, Any]]:
    """Today's usage record items of ``team_id`` in a runner's table (every shard of the day,
    see aigw.usage.records), read consistently."""
    from datetime import UTC, datetime

    from aigw.usage.records import USAGE_SHARDS, usage_pk
    from aigw_local.dynamodb_local import client

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    paginator = client(dynamodb_endpoint).get_paginator("query")
    items: list[dict[str, Any]] = []
    for shard in range(USAGE_SHARDS):
        pages = paginator.paginate(
            TableName="aigw-local",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": usage_pk(team_id, day, shard)}},
            ConsistentRead=True,
        )
        items += [item for batch in pages for item in batch["Items"]]
    return items


@dataclass
class Runner:
    base_url: str
    admin_key: str
    team_key: str
    upstream: FakeUpstream
    output: list[str]
    vendors: VendorServer
    dynamodb_endpoint: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``aigw`` admin CLI against this runner, as a user runs it."""
        return subprocess.run(
            [sys.executable, "-m", "aigw.cli", "--url", self.base_url, "--admin-key", self.admin_key, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ.copy(),
        )

    def _usage_items_today(self, team_id: str) -> list[dict[str, Any]]:
        return usage_items_today(self.dynamodb_endpoint, team_id)

    def active_leases(self, team_id: str) -> int:
        """How many budget leases of ``team_id`` are active in the runner's table."""
        from aigw.billing.leases import LEASE_SHARDS
        from aigw_local.dynamodb_local import client

        items = []
        for shard in range(LEASE_SHARDS):
            items += client(self.dynamodb_endpoint).query(
                TableName="aigw-local",
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": f"LEASE#{team_id}#{shard}"}},
                ConsistentRead=True,
            )["Items"]
        return sum(1 for item in items if item.get("state", {}).get("S") == "active")

    def leases_returned(self, team_id: str, timeout: float = 30) -> None:
        """Wait until the runner's workers handed every lease of ``team_id`` back (a worker
        does after about a second without calls): from then on the team's counters equal its
        usage records (docs/decisions/0019-budget-leases.md)."""
        deadline = time.monotonic() + timeout
        while self.active_leases(team_id):
            assert time.monotonic() < deadline, f"{team_id} still holds budget leases"
            time.sleep(0.1)

    def usage_records(
        self,
        team_id: str,
        where: Callable[[UsageRecord], bool] = lambda _: True,
        *,
        at_least: int = 1,
        timeout: float = 30,
    ) -> list[UsageRecord]:
        """Today's usage records of ``team_id`` that ``where`` selects, once there are
        ``at_least`` of them (or what there is at the deadline): a call is settled just after
        its answer (docs/decisions/0012-settle-after-the-answer.md), so poll."""
        from aigw.table import deserialize

        deadline = time.monotonic() + timeout
        while True:
            records = [UsageRecord.from_item(deserialize(i)) for i in self._usage_items_today(team_id)]
            found = [r for r in records if where(r)]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def settled_report(self, key: str, team_id: str, *, at_least: int, **params: str) -> dict[str, Any]:
        """GET /reports/usage once ``team_id`` has at least ``at_least`` usage records today and
        the report's totals count every one of them.

        Records are written as calls settle (after the answer) and reports are eventually
        consistent (the runner's stream poller applies each record to the aggregates, typically
        well under a second later): poll, with a deadline."""
        deadline = time.monotonic() + 20
        while True:
            records = len(self._usage_items_today(team_id))
            reply = httpx.get(
                self.base_url + "/reports/usage",
                params={"team": team_id, **params},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert reply.status_code == 200, reply.text
            report: dict[str, Any] = reply.json()
            if records >= at_least and report["totals"]["calls"] == records:
                return report
            assert time.monotonic() < deadline, (
                f"reports still count {report['totals']['calls']} of {records}"
            )
            time.sleep(0.05)

    def cli_json(self, *args: str) -> dict[str, object]:
        """``aigw ... --json``, which must succeed."""
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        return data


def _respond(request: Recorded) -> Scripted:
    return openai_completion(request, content="Hello from the fake upstream")


@dataclass
class Started:
    process: subprocess.Popen[str]
    keys: dict[str, str]
    dynamodb_endpoint: str
    output: list[str]

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; everything it started must go with it. (Its output has
        been read all along, into ``output``.)"""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_runner(env: dict[str, str], *args: str) -> Started:
    """``python -m aigw_local --in-memory --quiet [args]``, once it printed its whole banner.

    Its output is read on until it exits (into ``output``), so it never blocks on a full pipe."""
    process = subprocess.Popen(
        [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    deadline = time.monotonic() + 90
    keys: dict[str, str] = {}
    dynamodb_endpoint = ""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("local runner exited before it was ready:\n" + "".join(output))
        output.append(line)
        match = re.match(r"demo (admin|team) key:\s+(\S+)", line)
        if match:
            keys[match.group(1)] = match.group(2)
        started = re.match(r"starting DynamoDB Local on (\S+)", line)
        if started:
            dynamodb_endpoint = started.group(1)
        if line.startswith("Ctrl-C stops") and len(keys) == 2:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("local runner not ready in 90 s:\n" + "".join(output))
    threading.Thread(target=_drain, args=(process, output), daemon=True).start()
    return Started(process, keys, dynamodb_endpoint, output)


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    upstream = FakeUpstream(_respond).start()
    vendors = VendorServer().start()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-fake-upstream",
        "ANTHROPIC_BASE_URL": vendors.url + "/anthropic",
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "GROQ_BASE_URL": vendors.url + "/groq/v1",
        "GROQ_API_KEY": "gsk-fake",
        # Tests deliver Stripe events signed as Stripe signs them (tests/helpers/stripe.py).
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    started = start_runner(env)
    keys, output, dynamodb_endpoint = started.keys, started.output, started.dynamodb_endpoint
    yield Runner(
        f"http://127.0.0.1:{port}", keys["admin"], keys["team"], upstream, output, vendors, dynamodb_endpoint
    )
    started.stop()
    upstream.stop()
    vendors.stop()
