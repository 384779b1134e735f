"""The admin and invocation paths against real DynamoDB (Local): transactions, conditions and
the GSI behave as on AWS, which moto only approximates."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from aigw import clock
from aigw.usage import records as usage_records
from aigw_local.dynamodb_local import DynamoDBLocal, free_port
from tests.conftest import reset_core
from tests.helpers.apigw import call

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "ping"}]}


def _bootstrap() -> str:
    """``aigw bootstrap`` as a user runs it, in its own process, against DynamoDB Local."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aigw.cli",
            "bootstrap",
            "--json",
            "--table",
            os.environ["TABLE_NAME"],
            "--endpoint",
            os.environ["DYNAMODB_ENDPOINT"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret: str = json.loads(result.stdout)["secret"]
    return secret


def test_bootstrap_then_manage_teams_and_keys_then_call() -> None:
    admin = _bootstrap()
    assert call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin).status == 201
    assert call("POST", "/admin/teams", body={"team_id": "acme"}, key=admin).status == 409
    created = call(
        "POST", "/admin/teams/acme/keys", body={"name": "svc", "allowed_models": ["mock/*"]}, key=admin
    )
    assert created.status == 201
    secret = created.json()["secret"]

    reply = call("POST", "/v1/chat/completions", body=CHAT, key=secret)
    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Echo: ping"
    (record,) = usage_records.records_for_day("acme", clock.iso(clock.now())[:10])
    assert record.status == 200

    assert {t["team_id"] for t in call("GET", "/admin/teams", key=admin).json()["data"]} == {"admin", "acme"}
    assert call("DELETE", f"/admin/teams/acme/keys/{created.json()['key_id']}", key=admin).status == 200
    assert call("POST", "/v1/chat/completions", body=CHAT, key=secret).status == 401


def test_key_for_missing_team_is_refused_by_the_transaction() -> None:
    admin = _bootstrap()
    reply = call("POST", "/admin/teams/ghost/keys", body={}, key=admin)
    assert reply.status == 404
    assert reply.json()["code"] == "team_not_found"


def test_unreachable_database_fails_closed_with_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMODB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    reset_core()
    reply = call("POST", "/v1/chat/completions", body=CHAT, key="sk-aigw-" + "a" * 43)
    assert reply.status == 503
    assert reply.header("Retry-After") is not None
    assert reply.json()["error"]["code"] == "service_unavailable"


def _lan_address() -> str | None:
    """This machine's address on its network (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_dynamodb_local_listens_on_loopback_only(dynamodb_local: DynamoDBLocal) -> None:
    """It accepts any signature: from the network it must not be reachable at all."""
    assert dynamodb_local.loopback_only
    with socket.create_connection(("127.0.0.1", dynamodb_local.port), timeout=5):
        pass
    address = _lan_address()
    if address is None:
        pytest.skip("this machine has no network address other than loopback")
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((address, dynamodb_local.port), timeout=5),
    ):
        pass
