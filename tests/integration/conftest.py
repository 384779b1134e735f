"""Integration tests: DynamoDB Local over HTTP (one JVM per test session, a fresh table per
test) and vendor fakes on loopback."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table
from tests.conftest import give_everyone_a_plan, reset_core

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
