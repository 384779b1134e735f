"""A short, bounded load run through the local runner (loopback only): no errors, the usage
records add up to exactly the requests made, and the billing counters to the records.
Not a timing test: nothing here measures speed."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import httpx
import pytest

from aigw_local.dynamodb_local import client
from aigw_local.runner import TABLE_NAME
from tests.e2e.conftest import Runner

REQUESTS = 120
WORKERS = 6


def _dynamodb_endpoint(runner: Runner) -> str:
    for line in runner.output:
        found = re.search(r"DynamoDB Local on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the runner did not say where DynamoDB Local is")


def _usage_items(endpoint: str, team: str) -> list[dict[str, object]]:
    ddb = client(endpoint)
    items: list[dict[str, object]] = []
    kwargs: dict[str, object] = {
        "TableName": TABLE_NAME,
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": f"USAGE#{team}#"}},
    }
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _settled_usage_items(endpoint: str, team: str, expected: int) -> list[dict[str, object]]:
    """The team's usage records once ``expected`` are there: a call is settled just after its
    answer (docs/decisions/0012-settle-after-the-answer.md), so the last few may trail it."""
    deadline = time.monotonic() + 10
    while True:
        items = _usage_items(endpoint, team)
        if len(items) >= expected or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


@pytest.mark.e2e
def test_load_run_has_no_errors_and_usage_equals_requests(runner: Runner) -> None:
    admin = {"Authorization": f"Bearer {runner.admin_key}"}
    with httpx.Client(base_url=runner.base_url, timeout=30) as http:
        assert http.post("/admin/teams", json={"team_id": "loadrun"}, headers=admin).status_code == 201
        created = http.post("/admin/teams/loadrun/keys", json={"name": "load"}, headers=admin)
        assert created.status_code == 201
    secret = created.json()["secret"]
    upstream_before = len(runner.upstream.requests)
    statuses: Counter[int] = Counter()
    tokens = Counter[str]()
    lock = threading.Lock()
    remaining = list(range(REQUESTS))

    def worker() -> None:
        with httpx.Client(base_url=runner.base_url, timeout=30) as http:
            while True:
                with lock:
                    if not remaining:
                        return
                    n = remaining.pop()
                model = "openai/gpt-4o-mini" if n % 2 else "mock/echo"
                reply = http.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": f"call {n}"}]},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                with lock:
                    statuses[reply.status_code] += 1
                    if reply.status_code == 200:
                        tokens["prompt"] += reply.json()["usage"]["prompt_tokens"]
                        tokens["completion"] += reply.json()["usage"]["completion_tokens"]

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == Counter({200: REQUESTS})
    assert len(runner.upstream.requests) - upstream_before == REQUESTS // 2
    items = _settled_usage_items(_dynamodb_endpoint(runner), "loadrun", REQUESTS)
    assert len(items) == REQUESTS
    assert len({i["request_id"]["S"] for i in items}) == REQUESTS  # type: ignore[index]
    assert sum(int(i["prompt_tokens"]["N"]) for i in items) == tokens["prompt"]  # type: ignore[index]
    assert sum(int(i["completion_tokens"]["N"]) for i in items) == tokens["completion"]  # type: ignore[index]
    assert {i["status"]["N"] for i in items} == {"200"}  # type: ignore[index]
    # The team's billing counters agree with the records: every reservation was settled to
    # exactly what was recorded, none is left held.
    with httpx.Client(base_url=runner.base_url, timeout=30) as http:
        billing = http.get("/admin/teams/loadrun/billing", headers=admin).json()
    recorded_tokens = sum(int(i["prompt_tokens"]["N"]) + int(i["completion_tokens"]["N"]) for i in items)  # type: ignore[index]
    recorded_cost = sum(int(i["cost_micro_usd"]["N"]) for i in items)  # type: ignore[index]
    assert recorded_cost > 0  # the vendor half of the calls is priced, so this compares something
    assert billing["funding"] == "plan"  # the runner's free plan; no credits were granted
    assert billing["tokens_reserved"] == 0
    assert billing["tokens_used"] == recorded_tokens
    assert billing["spend_used_micro_usd"] == recorded_cost
    assert billing["credits_reserved_micro_usd"] == 0


@pytest.mark.e2e
def test_any_http_method_gets_a_json_answer(runner: Runner) -> None:
    for method in ("TRACE", "PROPFIND", "PATCH"):
        reply = httpx.request(method, runner.base_url + "/v1/chat/completions", timeout=10)
        assert reply.status_code == 405, method
        assert reply.json()["code"] == "method_not_allowed"
    assert httpx.request("TRACE", runner.base_url + "/nope", timeout=10).status_code == 404
