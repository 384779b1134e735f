"""Hardening: faults (database gone, upstream hangs) and abuse (huge, deep or undecodable
bodies, header injection, other teams' keys). The real handlers, DynamoDB Local, a fake vendor
on loopback.

Every fault also checks the team's billing counters: a reservation is always released, and
what is charged equals what the usage records say.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from aigw import clock, keys, teams
from aigw.billing import account
from aigw.config import settings
from aigw.usage import records as usage_records
from aigw_local import template as tpl
from aigw_local.dynamodb_local import free_port
from tests.conftest import FakeClock, reset_core
from tests.helpers import ledger
from tests.helpers.apigw import build_event, call, invoke_event
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion, openai_upstream
from tests.helpers.fake_vendors import VendorScript, VendorServer
from tests.helpers.streams import drain_reports

CHAT = "/v1/chat/completions"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


class Script:
    def __init__(self) -> None:
        self.delay = 0.0

    def __call__(self, request: Recorded) -> Scripted:
        scripted = openai_completion(request)
        scripted.delay = self.delay
        return scripted


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def upstream(script: Script, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    with openai_upstream(script, monkeypatch, timeout_seconds=1) as server:
        yield server


def _records(team: str = "acme") -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day(team, clock.iso(clock.now())[:10])


def _database_goes_away(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the table client at a closed port, keeping the warm key cache (a warm container)."""
    working = settings().dynamodb_endpoint or ""
    monkeypatch.setenv("DYNAMODB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    settings.cache_clear()
    from aigw import table

    table.reset()
    return working


def _database_comes_back(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, *, keep_leases: bool = False
) -> None:
    monkeypatch.setenv("DYNAMODB_ENDPOINT", endpoint)
    if keep_leases:  # the same warm container: only its table client is new
        settings.cache_clear()
        from aigw import table

        table.reset()
        return
    reset_core()


# ---- faults --------------------------------------------------------------------------------


def test_database_unreachable_refuses_with_503_and_nothing_reaches_the_vendor(
    upstream: FakeUpstream, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = _database_goes_away(monkeypatch)
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 503
    assert int(reply.header("Retry-After") or "0") >= 1
    assert reply.json()["error"]["code"] == "service_unavailable"
    assert upstream.requests == []
    _database_comes_back(monkeypatch, endpoint)
    assert _records() == []


def test_database_lost_with_a_live_lease_the_call_is_metered_once_it_is_back(
    upstream: FakeUpstream, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert call("POST", CHAT, body=BODY, key=key).status == 200  # the key is cached, the lease live
    endpoint = _database_goes_away(monkeypatch)
    # Admitted from the container's lease, in memory (decision 19): the lease already holds
    # the call's worst case, so the answer goes out and its usage record waits for the table.
    assert call("POST", CHAT, body=BODY, key=key).status == 200
    assert len(upstream.requests) == 2
    _database_comes_back(monkeypatch, endpoint, keep_leases=True)
    ledger.settle()  # the record that could not be written is written, the lease handed back
    assert len(_records()) == 2
    ledger.assert_agrees("acme")


def test_database_lost_without_a_fresh_lease_fails_closed_before_the_vendor(
    upstream: FakeUpstream, key: str, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    assert call("POST", CHAT, body=BODY, key=key).status == 200
    _database_goes_away(monkeypatch)
    fake_clock.advance(6)  # the lease's view of the entitlement is older than 5 s: it must re-read
    reply = call("POST", CHAT, body=BODY, key=key)
    assert reply.status == 503
    assert reply.header("Retry-After") is not None
    assert "choices" not in reply.body
    assert len(upstream.requests) == 1  # the vendor never saw the second call


def test_hanging_upstream_gives_504_at_the_timeout_and_a_failed_zero_cost_record(
    upstream: FakeUpstream, script: Script, key: str
) -> None:
    script.delay = 8  # far beyond UPSTREAM_TIMEOUT_SECONDS=1
    started = time.monotonic()
    reply = call("POST", CHAT, body=BODY, key=key)
    waited = time.monotonic() - started
    assert reply.status == 504
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert waited < script.delay  # the gateway gave up; it did not wait for the vendor
    (record,) = _records()
    assert (record.status, record.error_code, record.cost_micro_usd) == (504, "upstream_timeout", 0)
    assert (record.prompt_tokens, record.completion_tokens, record.usage_source) == (0, 0, "none")
    billing = account.summary("acme")
    assert (billing.tokens_reserved, billing.tokens_used, billing.spend_used_micro_usd) == (0, 0, 0)


def test_hanging_upstream_on_credits_gives_every_reserved_credit_back(
    upstream: FakeUpstream, script: Script, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEFAULT_PLAN")  # no plan: prepaid credits fund the call
    reset_core()
    account.grant_credits("acme", 5_000_000)
    assert account.summary("acme").funding == "credits"
    script.delay = 8
    assert call("POST", CHAT, body=BODY, key=key).status == 504
    ledger.settle()
    billing = account.summary("acme")
    assert (billing.credits_micro_usd, billing.credits_reserved_micro_usd) == (5_000_000, 0)
    (record,) = _records()
    assert (record.status, record.cost_micro_usd, record.funding) == (504, 0, "credits")


def test_upstream_hanging_before_the_first_chunk_gives_504_and_releases_the_reservation(
    upstream: FakeUpstream, script: Script, key: str
) -> None:
    script.delay = 8
    reply = call("POST", CHAT, body={**BODY, "stream": True}, key=key)
    assert reply.status == 504
    assert reply.json()["error"]["code"] == "upstream_timeout"
    (record,) = _records()
    assert (record.status, record.cost_micro_usd) == (504, 0)
    assert account.summary("acme").tokens_reserved == 0


def test_upstream_dying_mid_stream_ends_with_an_error_event_and_bills_what_was_sent(
    vendors: VendorServer, key: str
) -> None:
    vendors.reset(VendorScript(text="alpha beta gamma delta epsilon zeta", pieces=6, cut_after=4))
    reply = call("POST", CHAT, body={**BODY, "stream": True}, key=key)
    assert reply.status == 200
    events = [json.loads(line[6:]) for line in reply.body.split("\n") if line.startswith("data: {")]
    assert "error" in events[-1]
    assert "[DONE]" not in reply.body
    sent = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert sent  # something went out...
    assert sent != "alpha beta gamma delta epsilon zeta"  # ...and it was cut short
    (record,) = _records()
    assert (record.usage_source, record.status) == ("estimate", 502)
    assert 0 < record.completion_tokens < 500  # what was sent, not the vendor's full answer
    assert record.cost_micro_usd > 0
    ledger.settle()
    billing = account.summary("acme")
    assert billing.tokens_reserved == 0
    assert billing.tokens_used == record.prompt_tokens + record.completion_tokens
    assert billing.spend_used_micro_usd == record.cost_micro_usd


# ---- abuse ---------------------------------------------------------------------------------


@pytest.fixture
def admin() -> str:
    teams.create_team("ops")
    return keys.create_key("ops", role="admin").secret


def test_huge_bodies_get_413_in_each_routes_error_shape(key: str, admin: str) -> None:
    huge = "x" * (settings().max_body_bytes + 1)
    chat = call("POST", CHAT, raw_body='{"model": "mock/echo", "pad": "' + huge + '"}', key=key)
    assert chat.status == 413
    assert chat.json()["error"]["code"] == "payload_too_large"
    encoded = call("POST", CHAT, raw_body=huge.encode(), key=key)
    assert encoded.status == 413
    team = call("POST", "/admin/teams", raw_body='{"team_id": "' + huge + '"}', key=admin)
    assert team.status == 413
    assert team.header("Content-Type") == "application/problem+json"
    assert _records() == []


@pytest.mark.parametrize("depth", [101, 100_000])
def test_deeply_nested_json_gets_400_not_500(key: str, admin: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    chat = call(
        "POST",
        CHAT,
        raw_body='{"model": "mock/echo", "messages": [{"role": "user", "content": "x", "x": '
        + nested
        + "}]}",
        key=key,
    )
    assert chat.status == 400, chat.body
    assert chat.json()["error"]["code"] == "invalid_json"
    team = call("POST", "/admin/teams", raw_body='{"team_id": "deep", "name": ' + nested + "}", key=admin)
    assert team.status == 400
    assert team.json()["code"] == "invalid_json"
    assert _records() == []


def test_nesting_inside_strings_and_moderate_depth_are_fine(key: str) -> None:
    text = "[[[{" * 200
    nested = "[" * 50 + "]" * 50
    reply = call(
        "POST",
        CHAT,
        raw_body='{"model": "mock/echo", "messages": [{"role": "user", "content": "'
        + text
        + '", "x": '
        + nested
        + "}]}",
        key=key,
    )
    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: " + text


def test_invalid_utf8_is_refused_on_every_route_family(key: str, admin: str) -> None:
    bad = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    chat = call("POST", CHAT, raw_body=bad, key=key)
    assert (chat.status, chat.json()["error"]["code"]) == (400, "invalid_encoding")
    team = call("POST", "/admin/teams", raw_body=b'{"team_id": "\xc3("}', key=admin)
    assert (team.status, team.json()["code"]) == (400, "invalid_encoding")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk-aigw-x\r\nX-Injected: yes",
        "Bearer sk-aigw-x\nSet-Cookie: session=stolen",
        "Bearer \x00sk-aigw-x",
        "Bearer " + "sk-aigw-" + "a" * 5000,
    ],
)
def test_header_injection_is_refused_and_never_echoed(key: str, authorization: str) -> None:
    event, route = build_event("POST", CHAT, body=BODY)
    event["headers"]["Authorization"] = authorization
    event["multiValueHeaders"]["Authorization"] = [authorization]
    reply = invoke_event(event, route)
    assert reply.status == 401
    for name, value in reply.headers.items():
        assert not set(value) & {"\r", "\n", "\x00"}, name
        assert name.lower() not in ("x-injected", "set-cookie")
    assert "stolen" not in reply.body
    assert "X-Injected" not in reply.body


def test_injection_in_the_model_name_stays_inside_the_json_body(key: str) -> None:
    reply = call("POST", CHAT, body={**BODY, "model": "nope\r\nSet-Cookie: a=b"}, key=key)
    assert reply.status == 404
    assert all("\n" not in v and "\r" not in v for v in reply.headers.values())
    assert "set-cookie" not in {k.lower() for k in reply.headers}


def _admin_routes() -> list[tpl.Route]:
    return [r for r in tpl.routes(tpl.load()) if r.path.startswith("/admin")]


def _concrete(route: tpl.Route, team_id: str, key_id: str) -> str:
    values = {"team_id": team_id, "key_id": key_id}
    path = route.path
    for name in route.param_names:
        path = path.replace("{" + name + "}", values.get(name, "x")).replace("{" + name + "+}", "x")
    return path


def test_other_teams_keys_get_403_on_every_admin_route_and_learn_nothing() -> None:
    teams.create_team("victim")
    victim = keys.create_key("victim", name="victim-secret-name")
    teams.create_team("mallory")
    mallory = keys.create_key("mallory").secret
    routes = _admin_routes()
    assert routes  # the template has admin routes; if this breaks, the test is checking nothing
    for route in routes:
        path = _concrete(route, "victim", victim.key.key_id)
        body = {} if route.method in ("POST", "PUT", "PATCH") else None
        anonymous = call(route.method, path, body=body)
        assert anonymous.status == 401, (route.method, path)
        for intruder in (mallory, victim.secret):
            reply = call(route.method, path, body=body, key=intruder)
            assert reply.status == 403, (route.method, path, reply.body)
            assert reply.json()["code"] == "admin_required"
            assert victim.key.prefix not in reply.body
            assert "victim-secret-name" not in reply.body
    # Nothing happened to the victim's key on the way.
    assert keys.authenticate(victim.secret).status() == "active"
    assert [k.key_id for k in keys.list_keys("victim")] == [victim.key.key_id]


def test_usage_of_one_team_is_not_visible_in_another_teams_records(upstream: FakeUpstream) -> None:
    teams.create_team("alpha")
    teams.create_team("beta")
    alpha = keys.create_key("alpha").secret
    beta = keys.create_key("beta").secret
    for _ in range(3):
        assert call("POST", CHAT, body=BODY, key=alpha).status == 200
    assert call("POST", CHAT, body=BODY, key=beta).status == 200
    assert len(_records("alpha")) == 3
    (only,) = _records("beta")
    assert only.team_id == "beta"


# ---- prompt APIs and the catalog across teams ------------------------------------------------

SECRET_PROMPT = "Internal playbook 7731: summarise for the board."

_API_BODIES: dict[tuple[str, str], object] = {
    ("POST", "/apis/{slug}"): {"text": "hello"},
    ("POST", "/apis/{slug}/versions"): None,  # a whole design, filled in below
    ("POST", "/apis/{slug}/versions/{number}/promote"): {},
    ("POST", "/apis/{slug}/dry-run"): {"variables": {"text": "hello"}},
    ("POST", "/apis/{slug}/transitions"): {"to": "deprecated"},
    ("PUT", "/apis/{slug}/sharing"): {"visibility": "org"},
    ("POST", "/apis/{slug}/access-requests"): {},
    ("PUT", "/apis/{slug}/access-requests/{team_id}"): {"status": "approved"},
}


def _api_routes() -> list[tpl.Route]:
    routes = [r for r in tpl.routes(tpl.load()) if r.path.startswith("/apis/{slug}")]
    assert len(routes) >= 14, "the template's prompt-API routes moved; this test would check nothing"
    return routes


def _api_call(route: tpl.Route, slug: str, key: str) -> tuple[int, str]:
    from tests.helpers.prompt_apis import design

    path = route.path.replace("{slug}", slug).replace("{number}", "1").replace("{team_id}", "beta")
    body = _API_BODIES.get((route.method, route.path))
    if (route.method, route.path) == ("POST", "/apis/{slug}/versions"):
        body = {k: v for k, v in design().items() if k != "slug"}
    reply = call(route.method, path, body=body, key=key)
    return reply.status, reply.body.replace(slug, "<slug>")


def test_a_private_api_looks_exactly_like_a_missing_one_to_other_teams(upstream: FakeUpstream) -> None:
    from tests.helpers.prompt_apis import make_actors, published

    actors = make_actors()
    published(actors.owner, "board-notes", prompt={"system": SECRET_PROMPT, "user": "{{text}}"})
    assert call("POST", "/apis/board-notes", body={"text": "x"}, key=actors.owner).status == 200
    before = call("GET", "/apis/board-notes", key=actors.owner).json()
    for route in _api_routes():
        theirs = _api_call(route, "board-notes", actors.other)
        nothing = _api_call(route, "no-such-api", actors.other)
        assert theirs == nothing, (route.method, route.path, theirs)
        assert theirs[0] == 404, (route.method, route.path, theirs)
        assert SECRET_PROMPT not in theirs[1]
    catalog = call("GET", "/catalog?q=board", key=actors.other)
    assert (catalog.status, catalog.json()["data"]) == (200, [])
    after = call("GET", "/apis/board-notes", key=actors.owner).json()
    assert after == before  # nothing was changed by the intruder
    drain_reports()  # the owner's report follows the usage records through the table stream
    report = call("GET", "/apis/board-notes/usage", key=actors.owner).json()
    assert set(report["by_team"]) == {"acme"}  # the intruder's attempts billed nobody


def test_a_team_that_may_call_an_api_may_not_manage_it_or_read_its_internals(
    upstream: FakeUpstream,
) -> None:
    from tests.helpers.prompt_apis import make_actors, published

    actors = make_actors()
    published(actors.owner, "board-notes", prompt={"system": SECRET_PROMPT, "user": "{{text}}"})
    shared = {"visibility": "shared", "shared_with": ["beta"]}
    assert call("PUT", "/apis/board-notes/sharing", body=shared, key=actors.owner).status == 200
    assert call("POST", "/apis/board-notes", body={"text": "hi"}, key=actors.other).status == 200
    calling = {("POST", "/apis/{slug}"), ("GET", "/apis/{slug}"), ("GET", "/apis/{slug}/openapi.json")}
    for route in _api_routes():
        status, body = _api_call(route, "board-notes", actors.other)
        assert SECRET_PROMPT not in body, (route.method, route.path)
        if (route.method, route.path) in calling:
            assert status == 200, (route.method, route.path, body)
        elif (route.method, route.path) == ("POST", "/apis/{slug}/access-requests"):
            assert status in (200, 201, 409), body  # asking is allowed; it grants nothing
        else:
            assert status in (403, 404), (route.method, route.path, status, body)
    # The third team sees none of it, the owner's settings are as they were.
    assert call("GET", "/catalog", key=actors.third).json()["data"] == []
    assert call("GET", "/apis/board-notes/usage", key=actors.third).status == 404
    mine = call("GET", "/apis/board-notes", key=actors.owner).json()
    assert (mine["state"], mine["visibility"], mine["shared_with"]) == ("published", "shared", ["beta"])
    assert mine.get("effective_version", mine.get("live_version", 1)) == 1
