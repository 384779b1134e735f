"""Integration tests: DynamoDB Local over HTTP (one JVM per test session, a fresh table per
test) and vendor fakes on loopback."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table
from tests.conftest import give_everyone_a_plan, reset_core
from tests.helpers.fake_vendors import VendorServer

_tables = itertools.count()


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as db:
        yield db


@pytest.fixture(autouse=True)
def table(dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"aigw-it-{next(_tables)}"
    ensure_table(dynamodb_local.endpoint, name)
    monkeypatch.setenv("TABLE_NAME", name)
    monkeypatch.setenv("DYNAMODB_ENDPOINT", dynamodb_local.endpoint)
    reset_core()
    give_everyone_a_plan(monkeypatch)
    return name


@pytest.fixture(scope="session")
def vendor_server() -> Iterator[VendorServer]:
    server = VendorServer().start()
    yield server
    server.stop()


@pytest.fixture
def vendors(vendor_server: VendorServer, monkeypatch: pytest.MonkeyPatch) -> VendorServer:
    """Every provider pointed at its loopback fake, with a key each (Bedrock signs with IAM)."""
    base = vendor_server.url
    for prefix, path in (
        ("OPENAI", "/openai/v1"),
        ("GROQ", "/groq/v1"),
        ("DEEPSEEK", "/deepseek/v1"),
        ("OLLAMA", "/ollama/v1"),
        ("MISTRAL", "/mistral/v1"),
        ("ANTHROPIC", "/anthropic"),
        ("GEMINI", "/gemini"),
        ("AZURE_OPENAI", "/azure"),
    ):
        monkeypatch.setenv(f"{prefix}_BASE_URL", base + path)
        if prefix != "OLLAMA":
            monkeypatch.setenv(f"{prefix}_API_KEY", f"vendor-key-{prefix.lower()}")
    monkeypatch.setenv("BEDROCK_ENDPOINT_URL", base + "/bedrock")
    monkeypatch.setenv("UPSTREAM_TIMEOUT_SECONDS", "5")
    reset_core()
    vendor_server.reset()
    return vendor_server
