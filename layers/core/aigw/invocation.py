"""One model call from start to finish: resolve, authorise, admit, call (with retries and
fallbacks), meter.

Each model tried for a request is one metered attempt: its meter is opened before the
vendor is contacted and settled or failed exactly once. The first attempt carries the
request id; fallbacks carry ``<request id>#fb<n>`` so each has its own usage record.
Retries of the same model happen inside one attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aigw import clock, providers
from aigw.billing import account
from aigw.billing.meter import Meter, open_meter
from aigw.catalog import catalog, require_mode
from aigw.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ModelCard,
    ModelInfo,
    ModelList,
    Usage,
)
from aigw.config import settings
from aigw.errors import GatewayError, InvalidRequest, NotFound
from aigw.keys import ApiKey, require_model
from aigw.providers import Provider, get_provider
from aigw.providers.upstream import can_fall_back, is_retryable
from aigw.tokens import estimate_messages, estimate_text

CHAT_ROUTE = "/v1/chat/completions"


def list_models(key: ApiKey) -> ModelList:
    """The models this key may call: its own allow-list and its team's plan both allow them."""
    plan = account.governing_plan(key.team_id)
    cards = [
        ModelCard.of(m, configured=providers.configured(m.provider))
        for m in catalog().all()
        if key.allows_model(m.id) and (plan is None or plan.allows_model(m.id))
    ]
    return ModelList(data=cards)


def retrieve_model(key: ApiKey, model_id: str) -> ModelCard:
    """One model this key may call (``GET /v1/models/{id}``); any other id is a 404, as on
    OpenAI, whether it does not exist or is not this key's to use."""
    for card in list_models(key).data:
        if card.id == model_id:
            return card
    raise NotFound(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def resolve_model(key: ApiKey, requested: str) -> ModelInfo:
    return candidates(key, requested)[0]


def candidates(key: ApiKey, requested: str) -> list[ModelInfo]:
    """The models this key and its team's plan may use for ``requested``, in the order they
    are tried: an alias skips targets the plan excludes."""
    chain = catalog().chain(requested)
    allowed = [m for m in chain if key.allows_model(m.id)]
    if not allowed:
        require_model(key, chain[0].id)  # raises the 403 naming the model
    plan = account.governing_plan(key.team_id)
    in_plan = [m for m in allowed if plan is None or plan.allows_model(m.id)]
    # None in the plan: the first one's admission refuses (403 model_not_in_plan) on a fresh view.
    chosen = in_plan or allowed[:1]
    # Targets whose provider has no key here are skipped; with none left, a chain says which
    # keys are missing (a single model's call fails naming its own, and is metered as failed).
    ready = [m for m in chosen if providers.configured(m.provider)]
    if ready:
        return ready
    if len(chosen) > 1 or chosen[0].id != requested:
        raise providers.not_configured(requested, [m.id for m in chosen], [m.provider for m in chosen])
    return chosen


def attempt_id(request_id: str, attempt: int) -> str:
    return request_id if attempt == 0 else f"{request_id}#fb{attempt}"


def _retry_delay(error: GatewayError, attempt: int) -> float | None:
    cfg = settings()
    retry_after = error.headers.get("Retry-After")
    if retry_after is not None:
        wait = float(retry_after)
    else:
        wait = cfg.upstream_retry_base_seconds * (2**attempt) * random.uniform(0.5, 1.0)
    # A vendor asking for a longer pause than we are willing to hold the caller: give up here
    # (and let the fallback chain or the caller decide).
    return wait if wait <= cfg.upstream_retry_max_wait_seconds else None


def with_retries[T](call: Callable[[], T]) -> T:
    attempt = 0
    while True:
        try:
            return call()
        except GatewayError as exc:
            delay = _retry_delay(exc, attempt) if is_retryable(exc) else None
            if delay is None or attempt >= settings().upstream_max_retries:
                raise
        clock.sleep(delay)
        attempt += 1


def _attempts[T, R](
    key: ApiKey,
    request: ChatRequest,
    request_id: str,
    route: str,
    call: Callable[[ModelInfo, Provider, ChatRequest], T],
    finish: Callable[[Meter, T], R],
) -> R:
    chain = candidates(key, request.model)
    require_mode(chain[0], "chat", request.model)
    chain[0].check_output_limit(request)  # 400 naming max_tokens before anything is reserved
    for n, model in enumerate(chain):
        provider = get_provider(model.provider)
        meter = open_meter(key, model, request, request_id=attempt_id(request_id, n), route=route)
        assert meter.reservation is not None
        # The vendor is sent exactly the output limit that was reserved.
        bounded = request.with_output_limit(meter.reservation.output_tokens)
        try:
            result = call(model, provider, bounded)
        except GatewayError as exc:
            meter.fail(exc)
            if n + 1 < len(chain) and can_fall_back(exc):
                continue
            raise
        except Exception:
            meter.fail(GatewayError("internal error"))
            raise
        return finish(meter, result)
    raise AssertionError("unreachable: the chain is never empty")


def chat_completion(
    key: ApiKey, request: ChatRequest, *, request_id: str, route: str = CHAT_ROUTE
) -> ChatCompletion:
    """A whole answer. Streamed requests go through :func:`stream_chat_completion`."""
    if request.stream:
        raise InvalidRequest(
            "This route does not stream; send stream: false", code="stream_unsupported", param="stream"
        )

    def call(model: ModelInfo, provider: Provider, bounded: ChatRequest) -> ChatCompletion:
        return with_retries(lambda: provider.complete(model, bounded))

    def finish(meter: Meter, completion: ChatCompletion) -> ChatCompletion:
        completion.model = request.model
        meter.settle(completion.usage)
        return completion.served(meter.model.id)

    return _attempts(key, request, request_id, route, call, finish)


Started = tuple[ChatCompletionChunk | None, Iterator[ChatCompletionChunk]]


def stream_chat_completion(
    key: ApiKey, request: ChatRequest, *, request_id: str, route: str = CHAT_ROUTE
) -> MeteredStream:
    """A streamed answer. Vendors are tried (with retries and fallbacks) until one has sent its
    first chunk; from then on the caller is receiving, and that vendor is the one."""

    def call(model: ModelInfo, provider: Provider, bounded: ChatRequest) -> Started:
        def start() -> Started:
            chunks = provider.stream(model, bounded)
            try:
                return next(chunks, None), chunks
            except BaseException:
                _close(chunks)
                raise

        return with_retries(start)

    def finish(meter: Meter, started: Started) -> MeteredStream:
        return MeteredStream(meter=meter, request=request, first=started[0], rest=started[1])

    return _attempts(key, request, request_id, route, call, finish)


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


@dataclass
class MeteredStream:
    """A vendor's stream on its way to the caller, metered when it ends, however it ends.

    Iterating yields the unified chunks (``model`` renamed to what the caller asked for,
    usage taken off content chunks) and, last, one chunk with no choices carrying the usage
    that was billed. Closing it early (the client went away) bills what was generated so far.
    A vendor error mid-stream is raised after the meter is settled or failed.
    """

    meter: Meter
    request: ChatRequest
    first: ChatCompletionChunk | None
    rest: Iterator[ChatCompletionChunk]
    usage: Usage | None = None
    _vendor_usage: Usage | None = None
    _generated: list[str] = field(default_factory=list)
    _finished: bool = False
    _metered: bool = False
    _error: GatewayError | None = None

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        last: ChatCompletionChunk | None = None
        try:
            chunk = self.first
            while chunk is not None:
                last = chunk
                if chunk.usage is not None:
                    self._vendor_usage = chunk.usage
                if chunk.choices:
                    self._observe(chunk)
                    yield chunk.model_copy(update={"usage": None, "model": self.request.model})
                chunk = next(self.rest, None)
            self._finished = True
        except GatewayError as exc:
            self._error = exc
            raise
        finally:
            _close(self.rest)
            self._settle()
        if last is not None and self.usage is not None:
            yield ChatCompletionChunk(
                id=last.id, created=last.created, model=self.request.model, choices=[], usage=self.usage
            )

    def close(self) -> None:
        """Stop early: for a stream never iterated, or one abandoned between chunks."""
        if not self._metered:
            _close(self.rest)
            self._settle()

    def _observe(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            if choice.delta.content:
                self._generated.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                fn = call.get("function") or {}
                self._generated.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))

    def _settle(self) -> None:
        if self._metered:
            return
        self._metered = True
        if self._finished and self._vendor_usage is not None:
            self.usage = self._vendor_usage
            self.meter.settle(self.usage, source="provider")
            return
        if self._error is not None and not self._generated:
            self.meter.fail(self._error)
            return
        # Cut short (client gone, vendor failed mid-way) or a vendor without usage events:
        # bill the prompt and what was generated, estimated.
        prompt = estimate_messages(self.request.messages)
        completion = estimate_text("".join(self._generated))
        self.usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        self.meter.settle(self.usage, source="estimate", status=self._error.status if self._error else 200)
