"""The exact-match response cache: the same request from the same team answered again without
calling the vendor.

Opt-in, at three levels, the most specific winning: the team's setting (``PUT
/admin/teams/{team_id}/cache``), a key's (the same setting's ``keys`` map), and the request's
``x-aigw-cache`` header (``on``/``off``). Entries are keyed by a SHA-256 of the team, the route,
the model and the normalised request (``stream``, ``stream_options`` and ``user`` left out), so
no two teams ever share one. They live in the gateway table with the TTL the team chose
(bounded: :mod:`aigw.cache_settings`). Calls with ``temperature > 0`` are not cached
unless the team allows it (``allow_temperature``): their answers are meant to vary.

A hit answers with ``x-aigw-cache: hit`` and the original usage (a streamed request replays it
as SSE). It is still admitted like any call (401/402/403/429 as usual) and metered: billed at
``CACHE_HIT_PRICE_FRACTION`` of the original (default 0), its usage record flagged
``cache_hit`` with the ``cost_saved_micro_usd``.

Cached routes: ``/v1/chat/completions`` (plain and streamed) and ``/v1/embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from aigw import clock, request_context
from aigw.billing.admission import Estimate, terms_for
from aigw.billing.meter import open_meter
from aigw.billing.pricing import cost_micro_usd
from aigw.cache_settings import settings_for
from aigw.catalog import catalog
from aigw.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ChunkChoice,
    ChunkDelta,
    Usage,
)
from aigw.errors import InvalidRequest
from aigw.keys import ApiKey
from aigw.table import gateway_table

logger = Logger(service="aigw-cache")

HEADER = "x-aigw-cache"
_MAX_ENTRY = 350_000  # compressed bytes: DynamoDB items stop at 400 KB


def hit_price_fraction() -> Decimal:
    raw = os.environ.get("CACHE_HIT_PRICE_FRACTION", "").strip()
    fraction = Decimal(raw) if raw else Decimal(0)
    return min(max(fraction, Decimal(0)), Decimal(1))


@dataclass(frozen=True)
class Lookup:
    """Whether a request may use the cache, and under which entry key."""

    team_id: str
    entry: str
    ttl: int
    route: str


def _header(headers: Mapping[str, str] | None) -> bool | None:
    value = next((v for k, v in (headers or {}).items() if k.lower() == HEADER), None)
    if value is None:
        return None
    value = value.strip().lower()
    if value in ("on", "true", "1", "use", "yes"):
        return True
    if value in ("off", "false", "0", "skip", "no", "bypass"):
        return False
    raise InvalidRequest(f"The {HEADER} header takes 'on' or 'off'", code="invalid_header", param=HEADER)


def lookup_for(
    key: ApiKey,
    route: str,
    payload: dict[str, Any],
    temperature: float | None,
    headers: Mapping[str, str] | None,
) -> Lookup | None:
    """The cache entry a request maps to, or None when it does not use the cache."""
    asked = _header(headers)
    if asked is False:
        return None
    settings = settings_for(key.team_id)
    chosen = asked if asked is not None else settings.keys.get(key.key_id, settings.enabled)
    if not chosen:
        return None
    if temperature is not None and temperature > 0 and not settings.allow_temperature:
        request_context.add_headers({HEADER: "bypass"})
        return None
    normalised = {k: v for k, v in payload.items() if k not in ("stream", "stream_options", "user")}
    text = json.dumps(
        {"team": key.team_id, "route": route, "request": normalised}, sort_keys=True, default=str
    )
    entry = hashlib.sha256(text.encode()).hexdigest()
    return Lookup(key.team_id, entry, settings.ttl_seconds, route)


def _pk(team_id: str) -> str:
    return f"RCACHE#{team_id}"


@dataclass(frozen=True)
class Hit:
    model_id: str
    body: dict[str, Any]
    usage: Usage


def get(lookup: Lookup) -> Hit | None:
    item = gateway_table().get(_pk(lookup.team_id), lookup.entry)
    if item is None or int(item.get("expires_at", 0)) <= clock.now():
        return None
    blob = item["blob"]
    data = json.loads(zlib.decompress(bytes(blob.value if hasattr(blob, "value") else blob)))
    return Hit(str(item["model_id"]), data["body"], Usage.model_validate(data["usage"]))


def find(lookup: Lookup, key: ApiKey, requested: str) -> Hit | None:
    """The entry a request may be answered from: one whose model this key may call for
    ``requested`` now (its allow-list and its team's plan, as on a miss). A key that may use
    none of them gets the miss path's 403 before anything is answered; an entry of a model
    the key may not use (another key's fallback) is a miss."""
    hit = get(lookup)
    if hit is None:
        return None
    from aigw.billing import account
    from aigw.invocation import candidates  # invocation loads providers: only for a hit

    chain = candidates(key, requested, account.governing_plan(key.team_id))
    return hit if any(m.id == hit.model_id for m in chain) else None


def put(lookup: Lookup, model_id: str, body: dict[str, Any], usage: Usage) -> None:
    blob = zlib.compress(json.dumps({"body": body, "usage": usage.model_dump()}).encode())
    if len(blob) > _MAX_ENTRY:
        return
    now = clock.now()
    gateway_table().put(
        {
            "pk": _pk(lookup.team_id),
            "sk": lookup.entry,
            "type": "response_cache",
            "model_id": model_id,
            "blob": blob,
            "expires_at": now + lookup.ttl,
            "ttl": now + lookup.ttl,
        }
    )


def store(lookup: Lookup, model_id: str, body: dict[str, Any], usage: Usage) -> None:
    """Keep an answer before it is sent: the caller's very next request can be a hit. Best
    effort: the call is billed by now, and an error here would make an SDK send it again."""
    try:
        put(lookup, model_id, body, usage)
    except Exception:
        logger.exception("an answer could not be cached", extra={"route": lookup.route})


def bill_hit(
    key: ApiKey, hit: Hit, admission: ChatRequest | Estimate, *, request_id: str, route: str
) -> None:
    """Admit and meter a hit like any call: billed at the hit price, the saving recorded."""
    model = catalog().models.get(hit.model_id) or catalog().resolve(hit.model_id)
    full = cost_micro_usd(model, hit.usage)
    fraction = hit_price_fraction()
    billed = Usage(
        prompt_tokens=math.ceil(hit.usage.prompt_tokens * fraction),
        completion_tokens=math.ceil(hit.usage.completion_tokens * fraction),
        prompt_tokens_details={"cached_tokens": math.ceil(hit.usage.cached_tokens * fraction)},
    )
    billed.total_tokens = billed.prompt_tokens + billed.completion_tokens
    estimate = admission if isinstance(admission, Estimate) else Estimate.for_chat(admission)
    meter = open_meter(terms_for(key), model, estimate, request_id=request_id, route=route)
    meter.record_fields = {
        "cache_hit": True,
        "cost_saved_micro_usd": max(full - cost_micro_usd(model, billed), 0),
    }
    meter.settle(billed, source="provider")
    request_context.add_headers({HEADER: "hit"})


def mark_miss() -> None:
    """Say the answer came from the vendor (only on answers: a refusal was neither)."""
    request_context.add_headers({HEADER: "miss"})


# ---- streams ---------------------------------------------------------------------------


def replay(completion: ChatCompletion) -> Iterator[ChatCompletionChunk]:
    """A cached completion as the chunks of a stream (text a word at a time, tool calls whole)."""
    import re

    choice = completion.choices[0]
    cid, created, model = completion.id, completion.created, completion.model

    def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=cid, created=created, model=model, choices=[ChunkChoice(delta=delta, finish_reason=finish)]
        )

    yield chunk(ChunkDelta(role="assistant", content=""))
    for piece in re.findall(r"\S*\s*", choice.message.content or ""):
        if piece:
            yield chunk(ChunkDelta(content=piece))
    for index, call in enumerate(choice.message.tool_calls or []):
        yield chunk(ChunkDelta(tool_calls=[{"index": index, **call}]))
    yield chunk(ChunkDelta(), choice.finish_reason)
    yield ChatCompletionChunk(id=cid, created=created, model=model, choices=[], usage=completion.usage)


@dataclass
class Replayed:
    """A hit's replayed chunks, shaped like a metered stream for :mod:`aigw.streaming`."""

    chunks: Iterator[ChatCompletionChunk]

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self.chunks

    def close(self) -> None:
        pass


@dataclass
class Recording:
    """A metered stream passed through unchanged, kept whole once it ends normally."""

    stream: Any
    lookup: Lookup
    _chunks: list[ChatCompletionChunk] = field(default_factory=list)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        for chunk in self.stream:
            self._chunks.append(chunk)
            yield chunk
        usage = self.stream.usage
        if usage is not None and getattr(self.stream, "_finished", False):
            completion = assemble(self._chunks, usage)
            if completion is not None:
                put(self.lookup, self.stream.meter.model.id, completion.model_dump(exclude_none=True), usage)

    def close(self) -> None:
        self.stream.close()


def assemble(chunks: list[ChatCompletionChunk], usage: Usage) -> ChatCompletion | None:
    """The whole answer a stream's chunks make."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    first = next((c for c in chunks if c.choices), None)
    if first is None:
        return None
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(
                    int(call.get("index", 0)), {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += str(fn.get("name") or "")
                slot["function"]["arguments"] += str(fn.get("arguments") or "")
            finish = choice.finish_reason or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return ChatCompletion.model_validate(
        {
            "id": first.id,
            "created": first.created,
            "model": first.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
            "usage": usage.model_dump(),
        }
    )
