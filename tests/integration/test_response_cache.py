"""The exact-match response cache through the real handlers, on DynamoDB Local."""

from __future__ import annotations

import json

import pytest

from aigw import cache_settings, clock, keys, teams
from aigw.cache_settings import CacheSettings
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorScript, VendorServer

CHAT = "/v1/chat/completions"


def _records(team: str = "acme") -> list[usage_records.UsageRecord]:
    return sorted(
        usage_records.records_for_day(team, clock.iso(clock.now())[:10]), key=lambda r: r.created_at_ms
    )


def _body(**extra: object) -> dict[str, object]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0,
        **extra,
    }


@pytest.fixture
def cached(key: str) -> str:
    cache_settings.put_settings("acme", CacheSettings(enabled=True, ttl_seconds=600))
    return key


def test_a_repeat_is_a_hit_with_the_original_usage_billed_at_zero(vendors: VendorServer, cached: str) -> None:
    vendors.reset(VendorScript(text="Cached answer", prompt_tokens=100, completion_tokens=50))
    miss = call("POST", CHAT, body=_body(), key=cached)
    assert (miss.status, miss.header("x-aigw-cache")) == (200, "miss")
    hit = call("POST", CHAT, body=_body(), key=cached)
    assert (hit.status, hit.header("x-aigw-cache")) == (200, "hit")
    assert hit.json()["choices"][0]["message"]["content"] == "Cached answer"
    assert hit.json()["usage"] == miss.json()["usage"]
    assert len(vendors.requests) == 1
    first, second = _records()
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.cost_micro_usd == 0
    assert second.cost_saved_micro_usd == first.cost_micro_usd > 0
    assert hit.header("x-request-id") == second.request_id


def test_a_streamed_hit_replays_as_sse(vendors: VendorServer, cached: str) -> None:
    vendors.reset(VendorScript(text="one two three"))
    first = call("POST", CHAT, body=_body(stream=True), key=cached)
    assert first.header("x-aigw-cache") == "miss"
    again = call("POST", CHAT, body=_body(stream=True, stream_options={"include_usage": True}), key=cached)
    assert again.header("x-aigw-cache") == "hit"
    data = [line[6:] for line in again.body.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-1]["usage"]["completion_tokens"] == 500
    # the plain request is the same entry
    assert call("POST", CHAT, body=_body(), key=cached).header("x-aigw-cache") == "hit"
    assert len(vendors.requests) == 1


def test_temperature_above_zero_bypasses_unless_the_team_allows_it(
    vendors: VendorServer, cached: str
) -> None:
    body = _body(temperature=0.7)
    assert call("POST", CHAT, body=body, key=cached).header("x-aigw-cache") == "bypass"
    assert call("POST", CHAT, body=body, key=cached).header("x-aigw-cache") == "bypass"
    cache_settings.put_settings("acme", CacheSettings(enabled=True, allow_temperature=True))
    call("POST", CHAT, body=body, key=cached)
    assert call("POST", CHAT, body=body, key=cached).header("x-aigw-cache") == "hit"


def test_opt_in_by_header_and_by_key_opt_out_by_header(vendors: VendorServer, key: str) -> None:
    assert call("POST", CHAT, body=_body(), key=key).header("x-aigw-cache") is None
    on = {"x-aigw-cache": "on"}
    assert call("POST", CHAT, body=_body(), key=key, headers=on).header("x-aigw-cache") == "miss"
    assert call("POST", CHAT, body=_body(), key=key, headers=on).header("x-aigw-cache") == "hit"
    assert call("POST", CHAT, body=_body(), key=key).header("x-aigw-cache") is None
    other = keys.create_key("acme")
    cache_settings.put_settings("acme", CacheSettings(keys={other.key.key_id: True}))
    assert call("POST", CHAT, body=_body(), key=other.secret).header("x-aigw-cache") == "hit"
    off = {"x-aigw-cache": "off"}
    assert call("POST", CHAT, body=_body(), key=other.secret, headers=off).header("x-aigw-cache") is None


def test_never_shared_across_teams(vendors: VendorServer, cached: str) -> None:
    call("POST", CHAT, body=_body(), key=cached)
    teams.create_team("rival")
    rival = keys.create_key("rival").secret
    cache_settings.put_settings("rival", CacheSettings(enabled=True))
    assert call("POST", CHAT, body=_body(), key=rival).header("x-aigw-cache") == "miss"
    assert len(vendors.requests) == 2


def test_embeddings_hit_in_either_encoding(cached: str) -> None:
    body = {"model": "mock/embed", "input": ["a", "b"], "dimensions": 8}
    first = call("POST", "/v1/embeddings", body=body, key=cached)
    again = call("POST", "/v1/embeddings", body={**body, "encoding_format": "base64"}, key=cached)
    assert (first.header("x-aigw-cache"), again.header("x-aigw-cache")) == ("miss", "hit")
    assert isinstance(again.json()["data"][0]["embedding"], str)
    assert [r.cache_hit for r in _records()] == [False, True]


def test_settings_are_bounded_and_admin_only(key: str) -> None:
    teams.create_team("ops")
    admin_key = keys.create_key("ops", role="admin").secret
    bad = call("PUT", "/admin/teams/acme/cache", body={"enabled": True, "ttl_seconds": 10}, key=admin_key)
    assert bad.status == 400
    ok = call("PUT", "/admin/teams/acme/cache", body={"enabled": True, "ttl_seconds": 120}, key=admin_key)
    assert ok.status == 200
    assert ok.json()["ttl_seconds"] == 120
    assert call("PUT", "/admin/teams/acme/cache", body={"enabled": True}, key=key).status == 403


def test_a_hit_is_refused_to_a_key_that_may_not_use_the_model(vendors: VendorServer, cached: str) -> None:
    assert call("POST", CHAT, body=_body(), key=cached).header("x-aigw-cache") == "miss"
    narrow = keys.create_key("acme", allowed_models=["mock/*"]).secret
    refused = call("POST", CHAT, body=_body(), key=narrow)
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.header("x-aigw-cache") is None
    embed = {"model": "mock/embed", "input": "a"}
    assert call("POST", "/v1/embeddings", body=embed, key=cached).header("x-aigw-cache") == "miss"
    no_embed = keys.create_key("acme", allowed_models=["openai/*"]).secret
    assert call("POST", "/v1/embeddings", body=embed, key=no_embed).status == 403
    assert len(vendors.requests) == 1
