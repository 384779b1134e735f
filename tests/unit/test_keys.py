from __future__ import annotations

import boto3
import pytest

from aigw import clock, keys, request_context, teams
from aigw.errors import AuthenticationFailed, NotFound, PermissionDenied
from aigw.table import gateway_table


@pytest.fixture
def team() -> str:
    return teams.create_team("acme", "Acme").team_id


def test_key_has_prefix_and_only_its_hash_is_stored(team: str) -> None:
    issued = keys.create_key(team, name="ci")
    assert issued.secret.startswith("sk-aigw-")
    assert len(issued.secret) > 40
    assert issued.key.prefix == issued.secret[:12]
    dump = str(boto3.client("dynamodb", region_name="us-east-1").scan(TableName="aigw-test")["Items"])
    assert issued.secret not in dump
    assert keys.hash_secret(issued.secret) in dump


def test_active_key_authenticates_to_its_team(team: str) -> None:
    issued = keys.create_key(team)
    key = keys.authenticate(issued.secret)
    assert key.team_id == "acme"
    assert key.key_id == issued.key.key_id


@pytest.mark.parametrize("secret", ["", "sk-other-123", "sk-aigw-doesnotexist", "sk-aigw-" + "x" * 300])
def test_unknown_or_malformed_keys_are_refused(team: str, secret: str) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        keys.authenticate(secret)
    assert err.value.code == "invalid_api_key"


def test_revoked_key_is_refused_at_once_in_the_same_container(team: str) -> None:
    issued = keys.create_key(team)
    keys.authenticate(issued.secret)  # now cached
    keys.revoke_key(team, issued.key.key_id)
    with pytest.raises(AuthenticationFailed) as err:
        keys.authenticate(issued.secret)
    assert err.value.code == "revoked_api_key"


def test_revocation_reaches_other_containers_within_the_cache_bound(
    team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = keys.create_key(team)
    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    keys.authenticate(issued.secret)
    # Revoke as another container would: straight in the table, this container's cache untouched.
    pointer_hash = keys.hash_secret(issued.secret)
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName="aigw-test",
        Key={"pk": {"S": f"KEY#{pointer_hash}"}, "sk": {"S": "META"}},
        UpdateExpression="SET revoked_at = :t",
        ExpressionAttributeValues={":t": {"N": "1"}},
    )
    now[0] += 4.9
    assert keys.authenticate(issued.secret).key_id == issued.key.key_id
    now[0] += 0.2  # past the 5 s bound
    with pytest.raises(AuthenticationFailed, match="revoked"):
        keys.authenticate(issued.secret)


def test_a_busy_container_reads_its_key_again_after_the_answer_not_before_the_next_call(
    team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = keys.create_key(team)
    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    reads: list[str] = []
    gateway_table().client.meta.events.register(
        "before-call.dynamodb.GetItem", lambda model, **_: reads.append(model.name)
    )
    keys.authenticate(issued.secret)
    assert len(reads) == 1
    now[0] += 3  # past half the 5 s TTL: answered from the cache, read again after the answer
    tasks = request_context.open_deferred()
    keys.authenticate(issued.secret)
    assert len(reads) == 1  # nothing before the call
    request_context.close_deferred()
    request_context.run_deferred(tasks)
    assert len(reads) == 2
    now[0] += 3  # 6 s after the first read, 3 s after the second: still no read before the call
    tasks = request_context.open_deferred()
    keys.authenticate(issued.secret)
    request_context.close_deferred()
    assert len(reads) == 2


def test_expired_key_is_refused(team: str, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = keys.create_key(team, expires_at=clock.now() + 60)
    assert keys.authenticate(issued.secret)
    monkeypatch.setattr(clock, "now", lambda: issued.key.created_at + 61)
    with pytest.raises(AuthenticationFailed) as err:
        keys.authenticate(issued.secret)
    assert err.value.code == "expired_api_key"


def test_model_allow_list_accepts_globs(team: str) -> None:
    key = keys.create_key(team, allowed_models=["openai/gpt-4o*", "mock/echo"]).key
    assert key.allows_model("openai/gpt-4o-mini")
    assert key.allows_model("mock/echo")
    assert not key.allows_model("openai/o3-mini")
    with pytest.raises(PermissionDenied) as err:
        keys.require_model(key, "openai/o3-mini")
    assert err.value.status == 403


def test_key_for_unknown_team_is_404() -> None:
    with pytest.raises(NotFound):
        keys.create_key("ghost")


def test_list_keys_shows_status_without_secrets(team: str) -> None:
    first = keys.create_key(team, name="a")
    keys.create_key(team, name="b")
    keys.revoke_key(team, first.key.key_id)
    listed = keys.list_keys(team)
    assert {k.name: k.status() for k in listed} == {"a": "revoked", "b": "active"}


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Basic abc", "invalid_api_key"),
        ("Bearer ", "invalid_api_key"),
    ],
)
def test_bearer_header_parsing(header: str | None, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        keys.parse_bearer(header)
    assert err.value.code == code


def test_bearer_scheme_is_case_insensitive() -> None:
    assert keys.parse_bearer("bearer sk-aigw-abc") == "sk-aigw-abc"
