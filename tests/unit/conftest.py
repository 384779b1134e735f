"""Unit tests run against moto's in-memory DynamoDB: no network, table from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from aigw_local import template as tpl
from tests.conftest import give_everyone_a_plan, reset_core


@pytest.fixture(autouse=True)
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**tpl.table_definition(tpl.load(), "aigw-test"))
        reset_core()
        give_everyone_a_plan(monkeypatch)
        yield
