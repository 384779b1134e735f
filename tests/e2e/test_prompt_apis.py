"""A prompt API's whole life through the local runner: designed and published with the
``aigw apis`` CLI by its owner team, found in the catalog and called over HTTP by another
team after approval, then deprecated and retired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Runner
from tests.helpers.fake_vendors import VendorScript
from tests.helpers.prompt_apis import design


def _aigw(runner: Runner, *args: str, key: str | None = None, ok: bool = True) -> Any:
    prefix = ["apis", "--key", key] if key else ["apis"]
    result = runner.cli(*prefix, *args)
    if not ok:
        assert result.returncode == 1, result.stdout
        return result.stderr
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "--json" in args else result.stdout


def _admin(runner: Runner, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "aigw.cli", "--url", runner.base_url, "--admin-key", runner.admin_key, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _post(runner: Runner, path: str, body: Any, key: str) -> httpx.Response:
    return httpx.post(
        runner.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_design_publish_share_call_deprecate_retire(runner: Runner, tmp_path: Path) -> None:
    owner = runner.team_key  # the demo team owns the API
    spec_file = tmp_path / "summarize.json"
    spec_file.write_text(json.dumps(design(slug="e2e-summarize")), encoding="utf-8")

    # Design, then try the draft before anyone else can see it.
    created = _aigw(runner, "create", "--spec", f"@{spec_file}", "--json", key=owner)
    assert (created["state"], created["owner_team"]) == ("draft", "demo")
    tried = _aigw(runner, "dry-run", "e2e-summarize", "--vars", '{"text": "draft text"}', "--json", key=owner)
    assert tried["output"] == "Echo: Summarise (): draft text"

    _aigw(runner, "publish", "e2e-summarize", "--reason", "launch", "--json", key=owner)
    _aigw(runner, "share", "e2e-summarize", "--visibility", "org", "--json", key=owner)

    # Another team finds it, is refused until the owner approves, then calls it.
    _admin(runner, "teams", "create", "e2e-consumer", "--json")
    consumer = str(_admin(runner, "keys", "create", "--team", "e2e-consumer", "--json")["secret"])
    found = _aigw(runner, "catalog", "--q", "summ", "--json", key=consumer)
    assert [(e["slug"], e["access"]) for e in found] == [("e2e-summarize", "none")]
    refused = _post(runner, "/apis/e2e-summarize", {"text": "hi"}, consumer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "access_required"
    assert _aigw(runner, "request-access", "e2e-summarize", "--json", key=consumer)["status"] == "pending"
    assert "awaits approval" in _aigw(
        runner, "call", "e2e-summarize", "--vars", '{"text": "x"}', key=consumer, ok=False
    )
    _aigw(runner, "approve", "e2e-summarize", "e2e-consumer", "--json", key=owner)

    answer = _post(runner, "/apis/e2e-summarize", {"text": "hello", "style": "long"}, consumer)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == "Echo: Summarise (long): hello"
    assert answer.json()["version"] == 1
    invalid = _post(runner, "/apis/e2e-summarize", {"style": "long"}, consumer)
    assert (invalid.status_code, invalid.json()["param"]) == (400, "text")
    document = httpx.get(
        runner.base_url + "/apis/e2e-summarize/openapi.json",
        headers={"Authorization": f"Bearer {consumer}"},
    ).json()
    assert "/apis/e2e-summarize" in document["paths"]

    # A successor goes live; the original is deprecated, then retired.
    _aigw(runner, "create", "--spec", json.dumps(design(slug="e2e-summarize-v2")), "--json", key=owner)
    _aigw(runner, "publish", "e2e-summarize-v2", "--json", key=owner)
    _aigw(
        runner,
        "deprecate",
        "e2e-summarize",
        "--successor",
        "e2e-summarize-v2",
        "--sunset",
        "30d",
        "--json",
        key=owner,
    )
    warned = _post(runner, "/apis/e2e-summarize", {"text": "still here"}, consumer)
    assert warned.status_code == 200
    assert warned.headers["Deprecation"].startswith("@")
    assert parsedate_to_datetime(warned.headers["Sunset"]).tzinfo is not None
    # The successor is still private: the consumer is not told its name...
    assert "e2e-summarize-v2" not in warned.headers["Link"]
    # ...until it is listed for the organisation too.
    _aigw(runner, "share", "e2e-summarize-v2", "--visibility", "org", "--json", key=owner)
    warned = _post(runner, "/apis/e2e-summarize", {"text": "still here"}, consumer)
    assert '</apis/e2e-summarize-v2>; rel="successor-version"' in warned.headers["Link"]
    listed = _aigw(runner, "catalog", "--json", key=consumer)
    assert [e["deprecated"] for e in listed if e["slug"] == "e2e-summarize"] == [True]

    illegal = _aigw(runner, "publish", "e2e-summarize-v2", key=owner, ok=False)
    assert "409" in illegal

    _aigw(runner, "retire", "e2e-summarize", "--json", key=owner)
    gone = _post(runner, "/apis/e2e-summarize", {"text": "anyone?"}, consumer)
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["successor"] == "e2e-summarize-v2"

    history = _aigw(runner, "history", "e2e-summarize", "--json", key=owner)
    assert [h["action"] for h in history] == ["publish", "deprecate", "retire"]
    assert {h["by_team"] for h in history} == {"demo"}
    # The owner's report follows the usage records through the table stream: poll.
    deadline = time.monotonic() + 20
    while True:
        usage = _aigw(runner, "usage", "e2e-summarize", "--json", key=owner)
        counted = usage["by_team"].get("e2e-consumer", {}).get("calls", 0)
        if counted == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert usage["by_team"]["e2e-consumer"]["calls"] == 3
    assert usage["by_team"]["e2e-consumer"]["cost_micro_usd"] > 0


def _sse_payloads(reply: httpx.Response, stop_after: int | None = None) -> list[str]:
    payloads: list[str] = []
    for line in reply.iter_lines():
        if line.startswith("data: "):
            payloads.append(line.removeprefix("data: "))
        if stop_after is not None and len(payloads) == stop_after:
            break  # the client hangs up
    return payloads


def test_a_prompt_api_streams_over_http(runner: Runner) -> None:
    owner = runner.team_key
    created = _post(runner, "/apis", design(slug="e2e-stream"), owner)
    assert created.status_code == 201, created.text
    assert _post(runner, "/apis/e2e-stream/transitions", {"to": "published"}, owner).status_code == 200

    body = {"text": "a streamed hello", "style": "short", "stream": True}
    headers = {"Authorization": f"Bearer {owner}"}
    with httpx.stream("POST", runner.base_url + "/apis/e2e-stream", json=body, headers=headers) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/event-stream"
        assert "chunked" in reply.headers.get("transfer-encoding", "")
        *payloads, done = _sse_payloads(reply)
    assert done == "[DONE]"
    *deltas, final = [json.loads(p) for p in payloads]
    text = "".join(d["delta"] for d in deltas)
    assert text == "Echo: Summarise (short): a streamed hello"
    assert (final["output"], final["version"], final["model"]) == (text, 1, "mock/echo")
    assert final["usage"]["total_tokens"] > 0


def test_a_prompt_api_caller_who_hangs_up_is_billed_what_the_vendor_bills(runner: Runner) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    runner.vendors.reset(VendorScript(text=words, pieces=200, event_delay=0.01))
    owner = runner.team_key
    spec = design(slug="e2e-stream-cut", model="groq/llama-3.1-8b-instant")
    assert _post(runner, "/apis", spec, owner).status_code == 201
    assert _post(runner, "/apis/e2e-stream-cut/transitions", {"to": "published"}, owner).status_code == 200

    headers = {"Authorization": f"Bearer {owner}"}
    body = {"text": "go", "stream": True}
    with httpx.stream(
        "POST", runner.base_url + "/apis/e2e-stream-cut", json=body, headers=headers, timeout=30
    ) as reply:
        assert reply.status_code == 200
        first, *_ = _sse_payloads(reply, stop_after=5)
        assert json.loads(first)["delta"]

    # Read on to the vendor's usage after the hang-up (issue 11, item 3): billed what it bills.
    (record,) = runner.usage_records("demo", lambda r: r.route == "/apis/e2e-stream-cut")
    # The vendor generates up to the limit it was sent, and reports it; the caller saw 5 events.
    assert (record.status, record.usage_source) == (200, "provider")
    assert record.completion_tokens == record.output_limit
    assert "client_disconnected" in record.flags
    assert record.api_slug == "e2e-stream-cut"
    assert record.cost_micro_usd > 0
