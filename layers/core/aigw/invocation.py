"""One model call from start to finish: decide the terms, resolve the fallback chain, admit,
call (with retries and fallbacks), meter.

The team's terms (who pays, on which plan) are decided once per call
(:func:`aigw.billing.admission.terms_for`); the chain of models to try is the requested
model's (an alias's targets and the catalog's fallbacks), then the caller's own fallbacks (a
prompt API's ``fallback_model``): one mechanism for ``/v1`` and prompt APIs alike. Each model
tried is one metered attempt: its meter is opened before the vendor is contacted, with exactly
the output limit that was reserved on the request the vendor gets, and settled or failed
exactly once. The first attempt carries the request id; fallbacks carry ``<request id>#fb<n>``
so each has its own usage record. Retries of the same model happen inside one attempt.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from aigw import clock, providers, request_context
from aigw.billing import account, admission
from aigw.billing.admission import Estimate, Terms
from aigw.billing.meter import Meter, open_meter
from aigw.billing.plans import Plan
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

_logger = Logger(service="aigw-invoke")

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
    return candidates(key, requested, account.governing_plan(key.team_id))[0]


def candidates(key: ApiKey, requested: str, plan: Plan | None) -> list[ModelInfo]:
    """The models this key and its team's plan may use for ``requested``, in the order they
    are tried: an alias skips targets the plan excludes."""
    chain = catalog().chain(requested)
    allowed = [m for m in chain if key.allows_model(m.id)]
    if not allowed:
        require_model(key, chain[0].id)  # raises the 403 naming the model
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


@dataclass(frozen=True)
class Attempt:
    """A model to try, and the name it was asked for by (what the answer reports)."""

    model: ModelInfo
    name: str


def chain_for(terms: Terms, requested: str, fallbacks: Sequence[str] = ()) -> list[Attempt]:
    """The requested model's chain, then each fallback's (models the key and plan allow)."""
    chain = [Attempt(m, requested) for m in candidates(terms.key, requested, terms.plan)]
    seen = {a.model.id for a in chain}
    for name in fallbacks:
        try:
            extra = catalog().chain(name)
        except GatewayError:
            continue  # a fallback the catalog no longer has is skipped, not an error
        for model in extra:
            if (
                model.id not in seen
                and terms.key.allows_model(model.id)
                and terms.plan.allows_model(model.id)
            ):
                chain.append(Attempt(model, name))
                seen.add(model.id)
    return chain


def _within(estimate: Estimate, model: ModelInfo) -> Estimate:
    """The caller's limit, checked against the requested model, capped for a fallback model that
    can write less (so a fallback is tried, not refused with a 400)."""
    if estimate.output_limit is None or estimate.output_limit <= model.max_output_tokens:
        return estimate
    return dataclasses.replace(estimate, output_limit=model.max_output_tokens)


def failed_over(meter: Meter, exc: Exception, *, more: bool) -> bool:
    """Meter an attempt that failed; True when the chain's next model should be tried."""
    if isinstance(exc, GatewayError):
        meter.fail(exc)
        return more and can_fall_back(exc)
    meter.fail(GatewayError("internal error"))
    return False


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
    finish: Callable[[Meter, Attempt, ChatRequest, T], R],
    *,
    api_slug: str | None,
    fallbacks: Sequence[str],
    tried: list[str] | None,
) -> R:
    terms = admission.terms_for(key)
    chain = chain_for(terms, request.model, fallbacks)
    require_mode(chain[0].model, "chat", request.model)
    chain[0].model.check_output_limit(request)  # 400 naming the field before anything is reserved
    estimate = Estimate.for_chat(request)
    for n, attempt in enumerate(chain):
        provider = get_provider(attempt.model.provider)
        meter = open_meter(
            terms,
            attempt.model,
            _within(estimate, attempt.model),
            request_id=attempt_id(request_id, n),
            route=route,
            api_slug=api_slug,
        )
        # The vendor is sent exactly the output limit that was reserved (none: the call has no output).
        sent = request.with_output_limit(meter.output_limit) if meter.output_limit > 0 else request
        if tried is not None:
            tried.append(meter.request_id)
        try:
            result = call(attempt.model, provider, sent)
        except Exception as exc:
            if failed_over(meter, exc, more=n + 1 < len(chain)):
                continue
            raise
        return finish(meter, attempt, sent, result)
    raise AssertionError("unreachable: the chain is never empty")


def chat_completion(
    key: ApiKey,
    request: ChatRequest,
    *,
    request_id: str,
    route: str = CHAT_ROUTE,
    api_slug: str | None = None,
    fallbacks: Sequence[str] = (),
    tried: list[str] | None = None,
) -> ChatCompletion:
    """A whole answer. Streamed requests go through :func:`stream_chat_completion`.

    ``fallbacks``: model names tried after the requested model's own chain. ``tried``: if
    given, the request id of every metered attempt is appended to it."""
    if request.stream:
        raise InvalidRequest(
            "This route does not stream; send stream: false", code="stream_unsupported", param="stream"
        )

    def call(model: ModelInfo, provider: Provider, sent: ChatRequest) -> ChatCompletion:
        return with_retries(lambda: provider.complete(model, sent))

    def finish(
        meter: Meter, attempt: Attempt, sent: ChatRequest, completion: ChatCompletion
    ) -> ChatCompletion:
        completion.model = attempt.name
        completion.usage = meter.settle(completion.usage)
        return completion.served(meter.model.id)

    return _attempts(
        key, request, request_id, route, call, finish, api_slug=api_slug, fallbacks=fallbacks, tried=tried
    )


Started = tuple[ChatCompletionChunk | None, Iterator[ChatCompletionChunk]]


def stream_chat_completion(
    key: ApiKey,
    request: ChatRequest,
    *,
    request_id: str,
    route: str = CHAT_ROUTE,
    api_slug: str | None = None,
    fallbacks: Sequence[str] = (),
    tried: list[str] | None = None,
) -> MeteredStream:
    """A streamed answer. Vendors are tried (with retries and fallbacks) until one has sent its
    first chunk; from then on the caller is receiving, and that vendor is the one."""

    def call(model: ModelInfo, provider: Provider, sent: ChatRequest) -> Started:
        def start() -> Started:
            chunks = provider.stream(model, sent)
            try:
                return next(chunks, None), chunks
            except BaseException:
                _close(chunks)
                raise

        return with_retries(start)

    def finish(meter: Meter, attempt: Attempt, sent: ChatRequest, started: Started) -> MeteredStream:
        return MeteredStream(
            meter=meter,
            request=sent,
            model_name=attempt.name,
            first=started[0],
            rest=started[1],
            seconds_left=request_context.seconds_left(),
        )

    return _attempts(
        key, request, request_id, route, call, finish, api_slug=api_slug, fallbacks=fallbacks, tried=tried
    )


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


# After a client hangs up, the upstream is read on at most until this long before the
# function's own deadline (the usage record is written after it).
_DRAIN_MARGIN_SECONDS = 5.0


def drain(
    read_rest: Callable[[], None], seconds_left: float | None, started_at: float
) -> threading.Thread | None:
    """Run ``read_rest`` (reading an abandoned upstream on, for the vendor's usage) in a thread,
    waiting for it at most the upstream timeout and never into the function's last seconds.
    The thread if it is still reading when the wait ends, else None."""
    budget = float(settings().upstream_timeout_seconds)
    if seconds_left is not None:
        budget = min(budget, seconds_left - (clock.now_precise() - started_at) - _DRAIN_MARGIN_SECONDS)
    if budget <= 0:
        return None
    reader = threading.Thread(target=read_rest, name="aigw-drain", daemon=True)
    reader.start()
    reader.join(budget)
    return reader if reader.is_alive() else None


@dataclass
class MeteredStream:
    """A vendor's stream on its way to the caller, metered when it ends, however it ends.

    Iterating yields the unified chunks (``model`` renamed to what the caller asked for,
    usage taken off content chunks) and, last, one chunk with no choices carrying the usage
    that was billed. A vendor error mid-stream is raised after the meter is settled or failed.

    Closing it early means the client went away (issue 11, item 3): the vendor still bills the
    whole answer it generates, reasoning included, so the upstream is read on, unseen, until
    the vendor's usage arrives (bounded by the output limit that was sent and the function's
    remaining time), and billed. Where that cannot be had, the reservation is billed.
    """

    meter: Meter
    request: ChatRequest
    model_name: str
    first: ChatCompletionChunk | None
    rest: Iterator[ChatCompletionChunk]
    seconds_left: float | None = None
    usage: Usage | None = None
    _vendor_usage: Usage | None = None
    _generated: list[str] = field(default_factory=list)
    _finished: bool = False
    _metered: bool = False
    _error: GatewayError | None = None
    _draining: threading.Thread | None = None
    _client_gone: bool = False
    _started_at: float = field(default_factory=clock.now_precise)

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
                    yield chunk.model_copy(update={"usage": None, "model": self.model_name})
                chunk = next(self.rest, None)
            self._finished = True
        except GatewayError as exc:
            self._error = exc
            raise
        except GeneratorExit:
            # The consumer stopped between chunks: the client went away.
            if not self._metered:
                self._client_gone = True
                self._drain()
            raise
        finally:
            if self._draining is None:
                _close(self.rest)
            self._settle()
        if last is not None and self.usage is not None:
            yield ChatCompletionChunk(
                id=last.id, created=last.created, model=self.model_name, choices=[], usage=self.usage
            )

    def close(self) -> None:
        """Stop early: for a stream never iterated, or one abandoned between chunks."""
        if self._metered:
            return
        if not self._finished and self._error is None:
            self._client_gone = True
            self._drain()
        if self._draining is None:
            _close(self.rest)
        self._settle()

    def _drain(self) -> None:
        """Read the rest of the upstream, unseen, for the vendor's usage, in a thread bounded by
        the function's remaining time (an upstream that stalls cannot hold it past that)."""
        self._draining = drain(self._read_rest, self.seconds_left, self._started_at)

    def _read_rest(self) -> None:
        most = (self.meter.output_limit or 0) * 2 + 256  # a vendor ignoring the limit is cut off
        try:
            for chunk in self.rest:
                if chunk.usage is not None:
                    self._vendor_usage = chunk.usage
                    if not chunk.choices:
                        continue
                if chunk.choices:
                    self._observe(chunk)
                if estimate_text("".join(self._generated)) > most:
                    break
            else:
                self._finished = True
        except Exception as exc:  # the vendor failed after the client left: bill what can be had
            _logger.warning("upstream failed while read on after a disconnect", extra={"error": repr(exc)})
        finally:
            _close(self.rest)

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
        if self._client_gone:
            if self._vendor_usage is not None and self._draining is None:
                self.usage = self.meter.settle(self._vendor_usage, flags=("client_disconnected",))
                return
            self.usage = self.meter.settle_abandoned(estimate_text("".join(self._generated)))
            return
        if self._finished and self._vendor_usage is not None:
            self.usage = self.meter.settle(self._vendor_usage, source="provider")
            return
        if self._error is not None and not self._generated:
            self.meter.fail(self._error)
            return
        # A vendor failed mid-way, or sent no usage: bill the prompt and what it generated, estimated.
        prompt = estimate_messages(self.request.messages)
        completion = estimate_text("".join(self._generated))
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        self.usage = self.meter.settle(
            usage, source="estimate", status=self._error.status if self._error else 200
        )
