"""A short, bounded load run through the local runner (loopback only): no errors, the usage
records add up to exactly the requests made, and the billing counters to the records.
Not a timing test: nothing here measures speed."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import Runner

REQUESTS = 120
WORKERS = 6


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
    records = runner.usage_records("loadrun", at_least=REQUESTS)
    assert len(records) == REQUESTS
    assert len({r.request_id for r in records}) == REQUESTS
    assert sum(r.prompt_tokens for r in records) == tokens["prompt"]
    assert sum(r.completion_tokens for r in records) == tokens["completion"]
    assert {r.status for r in records} == {200}
    # The team's billing counters agree with the records once the workers handed their budget
    # leases back (after about a second idle): nothing is left held.
    runner.leases_returned("loadrun")
    with httpx.Client(base_url=runner.base_url, timeout=30) as http:
        billing = http.get("/admin/teams/loadrun/billing", headers=admin).json()
    recorded_tokens = sum(r.prompt_tokens + r.completion_tokens for r in records)
    recorded_cost = sum(r.cost_micro_usd for r in records)
    assert recorded_cost > 0  # the vendor half of the calls is priced, so this compares something
    assert billing["funding"] == "plan"  # the runner's free plan; no credits were granted
    assert billing["tokens_reserved"] == 0
    assert billing["tokens_used"] == recorded_tokens
    assert billing["spend_used_micro_usd"] == recorded_cost
    assert billing["credits_reserved_micro_usd"] == 0


@pytest.mark.e2e
def test_any_http_method_gets_a_json_answer(runner: Runner) -> None:
    # /v1 answers in OpenAI's shape, so the SDKs show the message.
    for method in ("TRACE", "PROPFIND", "PATCH"):
        reply = httpx.request(method, runner.base_url + "/v1/chat/completions", timeout=10)
        assert reply.status_code == 405, method
        assert reply.json()["error"]["code"] == "method_not_allowed"
        assert reply.headers["allow"] == "POST"
    unknown = httpx.request("TRACE", runner.base_url + "/v1/nope", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"
    # Everywhere else, problem+json with a code.
    for method in ("TRACE", "PATCH"):
        reply = httpx.request(method, runner.base_url + "/admin/teams", timeout=10)
        assert reply.status_code == 405, method
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert reply.json()["code"] == "method_not_allowed"
    nowhere = httpx.request("TRACE", runner.base_url + "/nope", timeout=10)
    assert nowhere.status_code == 404
    assert nowhere.json()["code"] == "not_found"
