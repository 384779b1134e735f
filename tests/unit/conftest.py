"""Unit tests run against moto's in-memory DynamoDB: no network, table from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from aigw_local import template as tpl
from tests.conftest import reset_core


@pytest.fixture(autouse=True)
def dynamodb() -> Iterator[None]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**tpl.table_definition(tpl.load(), "aigw-test"))
        reset_core()
        yield
