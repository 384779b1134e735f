"""The WCU bench's accounting (bench/wcu.py), checked against DynamoDB Local: item sizes agree with
what DynamoDB charges single writes, and transactions are costed by AWS's rule (2 units per item
per started KB), not by DynamoDB Local's under-count."""

from __future__ import annotations

from typing import Any

import pytest

from aigw_local.dynamodb_local import DynamoDBLocal, client
from bench import wcu


def _item(n: int, key: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": key or f"SIZE#{n}"}, "sk": {"S": "x"}, "pad": {"S": "y" * n}, **extra}


_EXTRA = {
    "num": {"N": "123456.789"},
    "m": {"M": {"a": {"N": "1"}, "b": {"L": [{"S": "x"}, {"BOOL": True}, {"NULL": True}]}}},
    "b": {"B": b"\x00" * 17},
    "ss": {"SS": ["one", "two"]},
}


@pytest.mark.parametrize("size", [100, 1023, 1024, 1025, 2048, 2049, 4000])
def test_item_sizes_agree_with_what_dynamodb_charges_a_put(
    dynamodb_local: DynamoDBLocal, table: str, size: int
) -> None:
    ddb = client(dynamodb_local.endpoint)
    item = _item(size - wcu.item_size(_item(0, "SIZED", **_EXTRA)), "SIZED", **_EXTRA)
    assert wcu.item_size(item) == size
    answer = ddb.put_item(TableName=table, Item=item, ReturnConsumedCapacity="TOTAL")
    assert wcu.units(size) == answer["ConsumedCapacity"]["CapacityUnits"]


def test_the_proxy_costs_a_transaction_by_awss_rule(dynamodb_local: DynamoDBLocal, table: str) -> None:
    proxy = wcu.Proxy(dynamodb_local.endpoint).start()
    try:
        ddb = client(proxy.endpoint)
        small = [{"Put": {"TableName": table, "Item": _item(i)}} for i in range(10)]
        ddb.transact_write_items(TransactItems=small)
        big = [{"Put": {"TableName": table, "Item": _item(1500)}}]
        ddb.transact_write_items(TransactItems=big)
        ddb.put_item(TableName=table, Item=_item(5))
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            ddb.put_item(TableName=table, Item=_item(5), ConditionExpression="attribute_not_exists(pk)")
    finally:
        proxy.stop()
    costs = [(w.operation, w.units) for w in proxy.ledger.writes]
    # Ten small items: 2 units each (DynamoDB Local reports 2 for the whole transaction).
    assert costs[:10] == [("TransactPut", 2.0)] * 10
    assert costs[10] == ("TransactPut", 4.0)  # 1.5 KB: two started KB, twice
    assert costs[11] == ("PutItem", 1.0)
    assert costs[12] == ("PutItem", 1.0)  # refused by its condition, still charged
