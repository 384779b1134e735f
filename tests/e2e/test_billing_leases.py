"""Budget leases and the billing-core items of issue 11 as an SDK user meets them, through the
local runner: exactness with 64 concurrent callers over 4 worker processes, a fast loop on a
little credit, a client that hangs up mid-stream, billing headers on streams, and a key's own
budget set with the CLI."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from aigw_local.dynamodb_local import free_port
from tests.e2e.conftest import Runner, Started, start_runner
from tests.e2e.test_openai_sdk import _aigw, _client
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion
from tests.helpers.fake_vendors import VendorScript

HELLO = [{"role": "user", "content": "Hello there"}]


def _team(runner: Runner, team: str, *plan_args: str) -> tuple[openai.OpenAI, str]:
    _aigw(runner, "teams", "create", team)
    if plan_args:
        _aigw(runner, "plans", "create", f"{team}-plan", *plan_args)
        _aigw(runner, "billing", "assign", "--team", team, "--plan", f"{team}-plan")
    key = _aigw(runner, "keys", "create", "--team", team)
    return _client(runner, str(key["secret"])), str(key["key_id"])


def _billing(runner: Runner, team: str) -> dict[str, object]:
    runner.leases_returned(team)
    return _aigw(runner, "billing", "show", "--team", team)


# ---- exactness across worker processes ---------------------------------------------------------------


class SlowUpstream:
    """Answers after a pause, so calls of the 4 workers overlap."""

    def __call__(self, request: Recorded) -> Scripted:
        time.sleep(0.05)
        return openai_completion(request)


@pytest.fixture(scope="module")
def four_workers() -> Iterator[tuple[Started, str]]:
    upstream = FakeUpstream(SlowUpstream()).start()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-x"}
    started = start_runner(env, "--workers", "4")
    yield started, f"http://127.0.0.1:{port}"
    started.stop()
    upstream.stop()


def test_64_concurrent_callers_on_4_workers_never_pass_the_quota(four_workers: tuple[Started, str]) -> None:
    started, base = four_workers
    runner = Runner(
        base, started.keys["admin"], started.keys["team"], None, [], None, started.dynamodb_endpoint
    )  # type: ignore[arg-type]
    client, _ = _team(runner, "exact", "--tokens", "600")
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        try:
            client.chat.completions.create(model="mock/echo", messages=HELLO, max_tokens=40)
            outcome = "ok"
        except openai.APIStatusError as exc:
            outcome = str(exc.code)
        with lock:
            outcomes.append(outcome)

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(200)))
    assert "ok" in outcomes
    assert set(outcomes) <= {"ok", "quota_exhausted"}
    view = _billing(runner, "exact")
    records = runner.usage_records("exact", at_least=outcomes.count("ok"))
    assert len(records) == outcomes.count("ok")
    used = int(str(view["tokens_used"]))
    assert used == sum(r.total_tokens for r in records) <= 600  # never past the quota
    assert (view["tokens_reserved"], runner.active_leases("exact")) == (0, 0)
    # Refusals were real: what was left could not pay for the refused call's worst case next
    # to the calls the 4 workers still had in flight.
    worst = max(r.prompt_tokens for r in records) * 5 // 4 + 16 + 40
    assert 600 - used < worst * 5


# ---- issue 11 through the SDK -----------------------------------------------------------------------


def test_a_fast_loop_near_the_end_of_a_quota_is_answered_with_capped_outputs(runner: Runner) -> None:
    # No max_tokens: each call may use the plan's default 4,096 output tokens, far more than the
    # 200 left. Before the fix: 402 quota_exhausted on every call; now capped answers while the
    # budget lasts, each saying so.
    client, _ = _team(runner, "e2e-tail", "--tokens", "200")
    answers = [
        client.chat.completions.with_raw_response.create(model="mock/echo", messages=HELLO) for _ in range(5)
    ]
    capped = [int(a.headers["x-billing-output-capped"]) for a in answers]
    assert all(16 <= c < 200 for c in capped)
    left = [int(a.headers["x-billing-quota-tokens-remaining"]) for a in answers]
    assert left == sorted(left, reverse=True)
    view = _billing(runner, "e2e-tail")
    records = runner.usage_records("e2e-tail", at_least=5)
    assert view["tokens_used"] == sum(r.total_tokens for r in records) <= 200


def test_a_client_that_stops_reading_a_stream_pays_what_the_vendor_bills(runner: Runner) -> None:
    client, _ = _team(runner, "e2e-gone")
    runner.vendors.reset(
        VendorScript(
            text=" ".join(f"w{i}" for i in range(30)),
            pieces=10,
            prompt_tokens=12,
            completion_tokens=5000,
            reasoning_tokens=4980,
            event_delay=0.05,
        )
    )
    stream = client.chat.completions.create(
        model="groq/llama-3.1-8b-instant", messages=HELLO, stream=True, max_tokens=6000
    )
    for n, _ in enumerate(stream):
        if n == 2:
            break
    stream.close()
    (record,) = runner.usage_records("e2e-gone", at_least=1)
    assert (record.prompt_tokens, record.completion_tokens) == (12, 5000)
    assert "client_disconnected" in record.flags


def test_streamed_answers_carry_billing_headers_into_the_sdk(runner: Runner) -> None:
    client, _ = _team(runner, "e2e-stream", "--tokens", "100000", "--rpm", "50")
    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=HELLO, stream=True)
    assert int(raw.headers["x-billing-quota-tokens-remaining"]) > 0
    assert raw.headers["x-ratelimit-limit-requests"] == "50"
    assert list(raw.parse())


def test_a_ci_key_with_its_own_daily_budget(runner: Runner) -> None:
    client, key_id = _team(runner, "e2e-ci")
    _aigw(runner, "billing", "grant", "--team", "e2e-ci", "--usd", "10")
    set_ = _aigw(runner, "key-budget", "set", key_id, "--team", "e2e-ci", "--usd", "0.0003", "--per", "day")
    assert set_["budget"] == {**set_["budget"], "limit_micro_usd": 300, "period": "day"}  # type: ignore[dict-item]
    refused = None
    for _ in range(30):
        try:
            client.chat.completions.create(model="mock/echo", messages=HELLO, max_tokens=20)
        except openai.APIStatusError as exc:
            refused = exc
            break
    assert refused is not None
    assert (refused.status_code, refused.code) == (402, "key_budget_exhausted")
    runner.leases_returned("e2e-ci")
    shown = runner.cli("key-budget", "show", "--team", "e2e-ci")
    assert shown.returncode == 0, shown.stderr
    assert "$0.0003/day" in shown.stdout
    reply = httpx.get(
        runner.base_url + "/admin/teams/e2e-ci/keys", headers={"Authorization": f"Bearer {runner.admin_key}"}
    ).json()
    (budget,) = [k["budget"] for k in reply["data"] if k["budget"]]
    assert 0 < budget["used_micro_usd"] <= 300
