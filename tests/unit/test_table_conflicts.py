"""A busy team's concurrent writes conflict on AWS (DynamoDB Local and moto rarely show it):
the table layer tries again, and only a lasting conflict becomes a 503."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from aigw.errors import ServiceUnavailable
from aigw.table import CONFLICT_ATTEMPTS, ConditionFailed, Table


def _cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


class FlakyClient:
    def __init__(self, failures: list[ClientError]) -> None:
        self.failures = failures
        self.calls = 0

    def _next(self) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {}

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        return self._next()

    def update_item(self, **_: Any) -> dict[str, Any]:
        return self._next()


OP = [{"Put": {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}}]


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aigw.table.time.sleep", lambda _: None)


def test_transaction_conflicts_are_retried_until_the_write_goes_through() -> None:
    client = FlakyClient([_cancelled("None", "TransactionConflict"), _cancelled("TransactionConflict")])
    Table("t", client).transact(OP)  # type: ignore[arg-type]
    assert client.calls == 3


def test_update_conflicts_are_retried() -> None:
    conflict = ClientError({"Error": {"Code": "TransactionConflictException"}}, "UpdateItem")
    client = FlakyClient([conflict])
    Table("t", client).update("a", "b", expression="SET x = :x", values={":x": 1})  # type: ignore[arg-type]
    assert client.calls == 2


def test_a_lasting_conflict_is_a_503_after_the_attempts() -> None:
    client = FlakyClient([_cancelled("TransactionConflict") for _ in range(CONFLICT_ATTEMPTS + 1)])
    with pytest.raises(ServiceUnavailable):
        Table("t", client).transact(OP)  # type: ignore[arg-type]
    assert client.calls == CONFLICT_ATTEMPTS


def test_a_failed_condition_is_never_retried() -> None:
    client = FlakyClient([_cancelled("ConditionalCheckFailed", "TransactionConflict")])
    with pytest.raises(ConditionFailed):
        Table("t", client).transact(OP)  # type: ignore[arg-type]
    assert client.calls == 1
