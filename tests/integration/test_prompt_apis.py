"""Prompt APIs on DynamoDB Local with a fake OpenAI server on loopback: what reaches the
vendor, JSON output contracts, fallback on vendor faults, and the per-API usage report."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from aigw import clock, sse
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_upstream import (
    FakeUpstream,
    Recorded,
    Scripted,
    openai_completion,
    openai_error,
    openai_upstream,
)
from tests.helpers.fake_vendors import VendorScript, VendorServer
from tests.helpers.prompt_apis import Actors, make_actors, published, share_org
from tests.helpers.streams import drain_reports

SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "words": {"type": "integer"}},
    "required": ["summary", "words"],
    "additionalProperties": False,
}
JSON_OUTPUT = {"mode": "json", "schema": SUMMARY_SCHEMA, "retries": 1}


class Script:
    """Answers in order; once the script runs out, repeats the last answer."""

    def __init__(self) -> None:
        self.answers: list[str | Scripted] = ["plain answer"]

    def __call__(self, request: Recorded) -> Scripted:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer if isinstance(answer, Scripted) else openai_completion(request, content=answer)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def upstream(script: Script, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    with openai_upstream(script, monkeypatch) as server:
        yield server


@pytest.fixture
def actors() -> Actors:
    return make_actors()


def test_rendered_prompt_and_pinned_sampling_reach_the_vendor(upstream: FakeUpstream, actors: Actors) -> None:
    published(
        actors.owner, model="openai/gpt-4o-mini", sampling={"temperature": 0.3, "max_tokens": 50, "seed": 7}
    )
    reply = call("POST", "/apis/summarize", body={"text": "a long text", "style": "short"}, key=actors.owner)
    assert reply.status == 200, reply.body
    assert reply.json()["output"] == "plain answer"
    (sent,) = upstream.requests
    payload = sent.json()
    assert payload["model"] == "gpt-4o-mini"
    assert payload["messages"] == [
        {"role": "system", "content": "You summarise texts."},
        {"role": "user", "content": "Summarise (short): a long text"},
    ]
    assert (payload["temperature"], payload["max_completion_tokens"], payload["seed"]) == (0.3, 50, 7)
    assert "response_format" not in payload
    assert actors.owner not in str(sent.headers)


def test_json_output_is_parsed_and_validated(upstream: FakeUpstream, script: Script, actors: Actors) -> None:
    script.answers = ['```json\n{"summary": "short", "words": 1}\n```']
    published(actors.owner, model="openai/gpt-4o-mini", output=JSON_OUTPUT)
    reply = call("POST", "/apis/summarize", body={"text": "t"}, key=actors.owner)
    assert reply.status == 200, reply.body
    assert reply.json()["output"] == {"summary": "short", "words": 1}
    response_format = upstream.requests[0].json()["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == SUMMARY_SCHEMA


def test_broken_json_is_retried_with_the_reason(
    upstream: FakeUpstream, script: Script, actors: Actors
) -> None:
    script.answers = ['{"summary": "no word count"}', '{"summary": "fixed", "words": 2}']
    published(actors.owner, model="openai/gpt-4o-mini", output=JSON_OUTPUT)
    reply = call("POST", "/apis/summarize", body={"text": "t"}, key=actors.owner)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["output"] == {"summary": "fixed", "words": 2}
    assert body["usage"]["calls"] == 2
    assert body["usage"]["prompt_tokens"] == 2000  # the fake reports 1000 per call
    retry = upstream.requests[1].json()["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"summary": "no word count"}'}
    assert "'words' is required" in retry[-1]["content"]
    assert len(usage_records.records_for_day("acme", clock.iso(clock.now())[:10])) == 2


def test_json_contract_with_no_retries_refuses_at_once(
    upstream: FakeUpstream, script: Script, actors: Actors
) -> None:
    script.answers = ["[1, 2]"]
    published(actors.owner, model="openai/gpt-4o-mini", output={**JSON_OUTPUT, "retries": 0})
    reply = call("POST", "/apis/summarize", body={"text": "t"}, key=actors.owner)
    assert reply.status == 502
    assert reply.json()["code"] == "output_invalid"
    assert "does not match the output schema" in reply.json()["detail"]
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    "fault",
    [openai_error(500, "boom"), openai_error(429, "slow down", headers={"Retry-After": "3"})],
)
def test_vendor_faults_move_to_the_fallback(
    upstream: FakeUpstream, script: Script, actors: Actors, fault: Scripted
) -> None:
    script.answers = [fault]
    published(actors.owner, model="openai/gpt-4o-mini", fallback_model="mock/echo")
    reply = call("POST", "/apis/summarize", body={"text": "t"}, key=actors.owner)
    assert reply.status == 200, reply.body
    assert reply.json()["output"] == "Echo: Summarise (): t"


def test_vendor_400_does_not_fall_back(upstream: FakeUpstream, script: Script, actors: Actors) -> None:
    script.answers = [openai_error(400, "bad request", code="invalid_value")]
    published(actors.owner, model="openai/gpt-4o-mini", fallback_model="mock/echo")
    reply = call("POST", "/apis/summarize", body={"text": "t"}, key=actors.owner)
    assert reply.status == 400
    assert len(upstream.requests) == 1


def test_usage_report_across_calling_teams(upstream: FakeUpstream, actors: Actors) -> None:
    published(actors.owner, model="openai/gpt-4o-mini")
    share_org(actors.owner)
    call("POST", "/apis/summarize/access-requests", body={}, key=actors.other)
    call("PUT", "/apis/summarize/access-requests/beta", body={"status": "approved"}, key=actors.owner)
    for _ in range(2):
        assert call("POST", "/apis/summarize", body={"text": "t"}, key=actors.other).status == 200
    drain_reports()  # the owner's report follows the usage records through the table stream
    report = call("GET", "/apis/summarize/usage?days=1", key=actors.owner).json()
    beta = report["by_team"]["beta"]
    # gpt-4o-mini: 1000 prompt tokens at $0.15/M + 500 completion tokens at $0.60/M = 450 micro-USD.
    assert (beta["calls"], beta["prompt_tokens"], beta["completion_tokens"]) == (2, 2000, 1000)
    assert beta["cost_micro_usd"] == 900
    assert report["totals"]["calls"] == 2
    day = clock.iso(clock.now())[:10]
    assert usage_records.records_for_day("acme", day) == []
    assert json.loads(json.dumps(report))["by_route"] == {"/apis/summarize": beta}


def test_a_vendor_failing_mid_stream_ends_the_stream_with_a_problem_event(
    vendors: VendorServer, actors: Actors
) -> None:
    vendors.reset(VendorScript(text="alpha beta gamma delta", pieces=4, cut_after=5))
    published(actors.owner, model="anthropic/claude-haiku-4-5")
    reply = call("POST", "/apis/summarize", body={"text": "x", "stream": True}, key=actors.owner)
    assert reply.status == 200
    payloads = [e.data for e in sse.parse(reply.body.splitlines())]
    assert "[DONE]" not in payloads
    *deltas, last = [json.loads(p) for p in payloads]
    assert deltas
    assert all(set(d) == {"delta"} for d in deltas)
    problem = last["error"]
    assert (problem["status"], problem["type"]) == (502, "urn:aigw:problem:" + problem["code"])
    assert problem["detail"]
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert (record.route, record.usage_source) == ("/apis/summarize", "estimate")
    assert record.completion_tokens > 0  # what reached the caller is billed
