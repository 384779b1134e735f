"""Report cells: the usage of one team, UTC day and combination of model, key, route, prompt API
and error code, fed from the usage records on the table stream. This module owns the item.

=====================  ================================  =====================================
item                   pk                                sk
=====================  ================================  =====================================
report cell            ``AGG#<team_id>#<n>``             ``D#<day>#<combination digest>``
=====================  ================================  =====================================

A usage record adds to exactly one cell (:func:`contribution`), so a batch of records costs one
``UpdateItem`` per cell it touches, each under 1 KB: one write unit for a batch of one record,
less per record as batches grow. ``n`` (``0`` .. ``CELL_SHARDS - 1``) spreads one team's cells
over a few partition keys by the combination's digest, so no key takes more than a share of a
team's writes; a report reads ``CELL_SHARDS`` ranges. Cells of prompt API calls also carry
``gsi1pk = APIAGG#<slug>#<n>``, ``gsi1sk = <day>#<team>#<digest>``: the API owner's view across
calling teams (:mod:`aigw.prompt_apis.usage`).

**Exactly once.** Each cell keeps, per usage-record partition key that fed it (a *feed*), the
stream sequence number of the last record it added (``ck_<feed digest>``). Records of one
partition key reach the stream in the order they were written, on one shard lineage, and every
reader (the aggregator, ``aigw reports catch-up``) applies them in that order, so "added" is
exactly "sequence number <= checkpoint". An update adds a feed's records only on condition
that the checkpoint is below the first of them; when it is not (a redelivery, or another
reader got there first), the refusal returns the checkpoints (no extra read) and the records
past them go again. A cell rebuilt from the records of a closed day (:func:`put_rebuilt`) is
``sealed``: no stream delivery changes it afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aigw.config import settings
from aigw.table import ConditionFailed, Item, gateway_table

CELL_SHARDS = 4
CELL_TYPE = "usage_cell"
COUNTERS: tuple[str, ...] = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micro_usd",
    "cache_hits",
    "cost_saved_micro_usd",
)
CHECKPOINT_PREFIX = "ck_"
SEALED = "sealed"
# A stream sequence number has at most 40 decimal digits (< 2**133): 17 bytes, big-endian, so
# that DynamoDB's byte-wise comparison of binary values orders them as numbers.
_SEQ_BYTES = 17
_DAY_SECONDS = 86_400
_API_PK = "APIAGG#"


class MalformedRecord(ValueError):
    """A usage record the reports cannot count (a field missing or of the wrong type)."""


@dataclass(frozen=True)
class Counters:
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_micro_usd: int = 0
    # Calls answered from the response cache, and what they would have cost without it.
    cache_hits: int = 0
    cost_saved_micro_usd: int = 0

    def plus(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, c) + getattr(other, c) for c in COUNTERS))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of_item(cls, item: Mapping[str, Any]) -> Counters:
        return cls(*(int(item.get(c, 0)) for c in COUNTERS))


@dataclass(frozen=True)
class Dims:
    """What a cell sums over: one team's calls of one UTC day with the same model, key, route,
    prompt API and error code."""

    team_id: str
    day: str
    model: str
    key_id: str
    route: str
    api_slug: str | None = None
    error_code: str | None = None

    @property
    def digest(self) -> str:
        parts = [self.model, self.key_id, self.route, self.api_slug, self.error_code]
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()

    @property
    def shard(self) -> int:
        return int(self.digest[:8], 16) % CELL_SHARDS

    @property
    def key(self) -> tuple[str, str]:
        return cell_pk(self.team_id, self.shard), f"D#{self.day}#{self.digest}"

    def attributes(self) -> dict[str, Any]:
        """The cell's descriptive attributes (everything but counters and checkpoints)."""
        start = datetime.fromisoformat(self.day).replace(tzinfo=UTC).timestamp()
        attrs: dict[str, Any] = {
            "type": CELL_TYPE,
            "team_id": self.team_id,
            "day": self.day,
            "model": self.model,
            "key_id": self.key_id,
            "route": self.route,
            # Cells expire with the records they sum (USAGE_RETENTION_DAYS after their day).
            "ttl": int(start) + (settings().usage_retention_days + 1) * _DAY_SECONDS,
        }
        if self.api_slug is not None:
            attrs.update(
                api_slug=self.api_slug,
                gsi1pk=api_cell_pk(self.api_slug, self.shard),
                gsi1sk=f"{self.day}#{self.team_id}#{self.digest}",
            )
        if self.error_code is not None:
            attrs["error_code"] = self.error_code
        return attrs


@dataclass(frozen=True)
class Cell:
    dims: Dims
    counters: Counters

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Cell:
        dims = Dims(
            team_id=str(item["team_id"]),
            day=str(item["day"]),
            model=str(item["model"]),
            key_id=str(item["key_id"]),
            route=str(item["route"]),
            api_slug=str(item["api_slug"]) if item.get("api_slug") is not None else None,
            error_code=str(item["error_code"]) if item.get("error_code") is not None else None,
        )
        return cls(dims, Counters.of_item(item))


def cell_pk(team_id: str, shard: int) -> str:
    return f"AGG#{team_id}#{shard}"


def api_cell_pk(slug: str, shard: int) -> str:
    return f"{_API_PK}{slug}#{shard}"


def day_of(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _text(item: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = item.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"usage record field {name!r} is missing or not text")
    return value


def _number(item: Mapping[str, Any], name: str, default: int | None = 0) -> int:
    value = item.get(name, default)
    if value is None or isinstance(value, (bool, str, bytes)):
        raise MalformedRecord(f"usage record field {name!r} is missing or not a number")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise MalformedRecord(f"usage record field {name!r} is not a number") from exc
    if number != value:
        raise MalformedRecord(f"usage record field {name!r} is not a whole number")
    return number


def contribution(item: Mapping[str, Any]) -> tuple[Dims, Counters]:
    """The cell a usage record (as stored, deserialised) adds to, and what it adds.

    Reads only the fields reports need, so fields added to records later never stop a record
    from being counted."""
    from aigw.usage.records import api_slug_of  # records imports billing; reports need not

    route = _text(item, "route")
    assert route is not None
    slug = _text(item, "api_slug", optional=True) or api_slug_of(route)
    status = _number(item, "status", default=None)
    team_id = _text(item, "team_id")
    if not team_id:
        raise MalformedRecord("usage record without a team")
    dims = Dims(
        team_id=team_id,
        day=day_of(_number(item, "created_at_ms", default=None)),
        model=str(_text(item, "model")),
        key_id=str(_text(item, "key_id")),
        route=route,
        api_slug=slug,
        error_code=_text(item, "error_code", optional=True) or None,
    )
    counters = Counters(
        calls=1,
        errors=1 if status >= 400 else 0,
        prompt_tokens=_number(item, "prompt_tokens"),
        completion_tokens=_number(item, "completion_tokens"),
        cached_tokens=_number(item, "cached_tokens"),
        cost_micro_usd=_number(item, "cost_micro_usd"),
        cache_hits=1 if item.get("cache_hit") is True else 0,
        cost_saved_micro_usd=_number(item, "cost_saved_micro_usd"),
    )
    return dims, counters


def feed_of(usage_pk: str) -> str:
    """The checkpoint attribute of the records of one usage-record partition key."""
    return CHECKPOINT_PREFIX + hashlib.blake2b(usage_pk.encode(), digest_size=5).hexdigest()


def _seq_bytes(seq: int) -> bytes:
    return seq.to_bytes(_SEQ_BYTES, "big")


def checkpoints(item: Mapping[str, Any]) -> dict[str, int]:
    """The checkpoints of a cell item, by feed attribute."""
    found: dict[str, int] = {}
    for name, value in item.items():
        if name.startswith(CHECKPOINT_PREFIX):
            found[name] = int.from_bytes(bytes(value), "big")  # a boto3 Binary, or bytes
    return found


@dataclass(frozen=True)
class Refused:
    """Why :func:`add` changed nothing: the cell's checkpoints as they were, or that it is sealed."""

    checkpoints: dict[str, int]
    sealed: bool


def add(dims: Dims, counters: Counters, feeds: Mapping[str, tuple[int, int]]) -> Refused | None:
    """Add ``counters`` to the cell of ``dims``, as the records of each feed (its checkpoint
    attribute -> first and last sequence number) between those numbers; None when added.

    Refused (nothing changed) when a feed's checkpoint is not below its first number, or the
    cell is sealed."""
    names = {f"#{a}": a for a in [*dims.attributes(), *COUNTERS, SEALED]}
    values: dict[str, Any] = {f":{a}": v for a, v in dims.attributes().items()}
    values.update({f":{c}": getattr(counters, c) for c in COUNTERS})
    sets = [f"#{a} = :{a}" for a in dims.attributes()]
    conditions = [f"attribute_not_exists(#{SEALED})"]
    for index, (feed, (first, last)) in enumerate(sorted(feeds.items())):
        names[f"#f{index}"] = feed
        values[f":first{index}"] = _seq_bytes(first)
        values[f":last{index}"] = _seq_bytes(last)
        sets.append(f"#f{index} = :last{index}")
        conditions.append(f"(attribute_not_exists(#f{index}) OR #f{index} < :first{index})")
    pk, sk = dims.key
    try:
        gateway_table().update(
            pk,
            sk,
            expression="SET " + ", ".join(sets) + " ADD " + ", ".join(f"#{c} :{c}" for c in COUNTERS),
            names=names,
            values=values,
            condition=" AND ".join(conditions),
            old_on_failure=True,
        )
    except ConditionFailed as exc:
        old = exc.item or {}
        return Refused(checkpoints(old), SEALED in old)
    return None


def _days(start: date, end: date) -> tuple[str, str]:
    return f"D#{start.isoformat()}", f"D#{end.isoformat()}~"


def team_cells(team_id: str, start: date, end: date) -> list[Cell]:
    """Every cell of ``team_id`` for the UTC days from ``start`` to ``end`` (both included)."""
    low, high = _days(start, end)
    found: list[Cell] = []
    for shard in range(CELL_SHARDS):
        items = gateway_table().query(
            "pk = :p AND sk BETWEEN :lo AND :hi", {":p": cell_pk(team_id, shard), ":lo": low, ":hi": high}
        )
        found.extend(Cell.from_item(i) for i in items if i.get("type") == CELL_TYPE)
    return found


def api_cells(slug: str, start: date, end: date) -> list[Cell]:
    """Every cell of calls to the prompt API ``slug``, of any calling team, for those days."""
    found: list[Cell] = []
    for shard in range(CELL_SHARDS):
        items = gateway_table().query(
            "gsi1pk = :p AND gsi1sk BETWEEN :lo AND :hi",
            {":p": api_cell_pk(slug, shard), ":lo": start.isoformat(), ":hi": end.isoformat() + "~"},
            index="gsi1",
        )
        found.extend(Cell.from_item(i) for i in items if i.get("type") == CELL_TYPE)
    return found


def sum_records(items: Iterable[Mapping[str, Any]]) -> dict[Dims, Counters]:
    """Usage records (as stored) summed per cell."""
    sums: dict[Dims, Counters] = {}
    for item in items:
        dims, counters = contribution(item)
        sums[dims] = sums[dims].plus(counters) if dims in sums else counters
    return sums


def put_rebuilt(dims: Dims, counters: Counters) -> None:
    """Replace a cell with totals recounted from its records, sealed against the stream."""
    pk, sk = dims.key
    item: Item = {"pk": pk, "sk": sk, **dims.attributes(), SEALED: True}
    item.update({c: getattr(counters, c) for c in COUNTERS})
    gateway_table().put(item)


def delete(dims: Dims) -> None:
    gateway_table().delete(*dims.key)
