"""Provider keys in AWS: SSM SecureString or Secrets Manager (moto), sent to the vendor (a
loopback fake), never the caller's gateway key."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from tests.conftest import reset_core
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorServer

BODY = {"model": "anthropic/claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[VendorServer]:
    server = VendorServer().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url + "/anthropic")
    reset_core()
    yield server
    server.stop()


def test_key_from_an_ssm_securestring(
    vendors: VendorServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("ssm").put_parameter(
        Name="/aigw/test/anthropic-ssm", Value="sk-ant-from-ssm", Type="SecureString"
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY_PARAMETER", "/aigw/test/anthropic-ssm")
    reset_core()
    assert call("POST", "/v1/chat/completions", body=BODY, key=key).status == 200
    (sent,) = vendors.requests
    assert sent.headers["x-api-key"] == "sk-ant-from-ssm"
    assert key not in str(sent.headers)


def test_key_from_secrets_manager(vendors: VendorServer, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="aigw/anthropic", SecretString="sk-ant-from-sm")[
        "ARN"
    ]
    monkeypatch.setenv("ANTHROPIC_API_KEY_PARAMETER", arn)
    reset_core()
    assert call("POST", "/v1/chat/completions", body=BODY, key=key).status == 200
    assert vendors.requests[0].headers["x-api-key"] == "sk-ant-from-sm"
