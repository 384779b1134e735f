"""Calling a prompt API: validate the variables, render the prompt, call the model through
:func:`aigw.invocation.chat_completion` (so admission, quotas, 402 and metering are exactly
those of ``/v1``, billed to the caller's team), then shape or check the output.

Each model call (a fallback, a retry after a broken JSON answer) is its own metered call
with its own request id, so every token the caller's team pays for is on a usage record. The
API's ``fallback_model`` goes through the same fallback chain as ``/v1`` (it is tried after the
model's own chain, on the same vendor faults), and every record carries the API's slug.

``stream: true`` answers server-sent events through the same metered stream as ``/v1``
(:class:`aigw.invocation.MeteredStream`): ``data: {"delta": ...}`` while the model writes, one
``data: {"output", "usage", "version", "model"}`` when it is done, then ``data: [DONE]``; a
failure after the first byte is one ``data: {"error": <problem>}`` event and the stream ends.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aigw import invocation, problems, sse, streaming
from aigw.catalog import catalog
from aigw.chat import ChatCompletion, ChatMessage, ChatRequest, Usage
from aigw.errors import InvalidRequest, UpstreamError
from aigw.keys import ApiKey
from aigw.prompt_apis import access, design, lifecycle, schemas
from aigw.prompt_apis.model import Design, Version
from aigw.prompt_apis.rendering import render_messages


@dataclass(frozen=True)
class Answer:
    output: Any
    usage: Usage
    version: int
    model: str
    calls: int
    headers: dict[str, str] = field(default_factory=dict)
    messages: tuple[ChatMessage, ...] = ()

    def body(self) -> dict[str, Any]:
        usage = self.usage.model_dump(exclude_none=True)
        return {"output": self.output, "usage": {**usage, "calls": self.calls}, "version": self.version}


@dataclass
class StreamedAnswer:
    """An answer on its way: :meth:`events` is the body, :meth:`close` settles the meter
    whether or not the caller read to the end."""

    stream: invocation.MeteredStream
    version: int
    model: str
    calls: int
    route: str
    headers: dict[str, str] = field(default_factory=dict)

    def events(self) -> Iterator[bytes]:
        parts: list[str] = []
        try:
            for chunk in self.stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield sse.encode({"delta": choice.delta.content})
            usage = (self.stream.usage or Usage()).model_dump(exclude_none=True)
            yield sse.encode(
                {
                    "output": "".join(parts),
                    "usage": {**usage, "calls": self.calls},
                    "version": self.version,
                    "model": self.model,
                }
            )
            yield sse.DONE
        except Exception as exc:  # the status line is sent: the failure is the last event
            yield sse.encode({"error": problems.error_body(streaming.failure(exc), self.route)[1]})
        finally:
            self.stream.close()

    def close(self) -> None:
        self.stream.close()


def api_route(slug: str) -> str:
    return f"/apis/{slug}"


def split_body(body: Any) -> tuple[dict[str, Any], bool]:
    """The variables and the ``stream`` flag from a call's JSON body."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            "The body must be a JSON object of the API's input variables", code="invalid_body"
        )
    variables = dict(body)
    stream = variables.pop("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be true or false", param="stream")
    return variables, stream


def call(key: ApiKey, slug: str, body: Any, *, request_id: str) -> Answer | StreamedAnswer:
    """``POST /apis/{slug}``: the live version (a draft's latest, for its owner)."""
    api = access.require_caller(key, slug)
    lifecycle.require_callable(api)
    variables, stream = split_body(body)
    version = design.get_version(slug, api.effective_version)
    headers = lifecycle.deprecation_headers(api)
    route = api_route(slug)
    if stream:
        streamed = run_stream(key, version, variables, request_id=request_id, route=route, slug=slug)
        return dataclasses.replace(streamed, headers=headers)
    answer = run(key, version, variables, request_id=request_id, route=route, slug=slug)
    return dataclasses.replace(answer, headers=headers)


def dry_run(
    key: ApiKey, slug: str, variables: Mapping[str, Any], *, version: int | None, request_id: str
) -> Answer:
    """The owner tries a version (default: the latest saved) before it goes live. It is a real
    model call, metered and billed to the owner's team like any other."""
    api = access.require_manager(key, slug)
    lifecycle.require_callable(api)
    chosen = design.get_version(slug, version if version is not None else api.latest_version)
    return run(
        key, chosen, dict(variables), request_id=request_id, route=api_route(slug) + "/dry-run", slug=slug
    )


def build_request(spec: Design, messages: list[ChatMessage], model: str, *, stream: bool) -> ChatRequest:
    params = spec.sampling.model_dump(exclude_none=True)
    if spec.output.mode == "json" and spec.output.json_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": spec.output.json_schema, "strict": False},
        }
    request = ChatRequest(model=model, messages=messages, stream=stream or None, **params)
    return on_model(request, model)


def on_model(request: ChatRequest, model: str, **changes: Any) -> ChatRequest:
    """``request`` for ``model``: the version's pinned ``max_tokens`` is capped at what that model
    can produce (a fallback may produce less, or the catalog's limit was lowered since)."""
    update: dict[str, Any] = {"model": model, **changes}
    if request.max_tokens is not None:
        update["max_tokens"] = min(request.max_tokens, catalog().resolve(model).max_output_tokens)
    return request.model_copy(update=update)


def run(
    key: ApiKey,
    version: Version,
    variables: dict[str, Any],
    *,
    request_id: str,
    route: str,
    slug: str,
) -> Answer:
    spec = version.design
    schemas.validate_input(spec.input_schema, variables)
    messages = render_messages(spec.prompt, variables)
    request = build_request(spec, messages, spec.model, stream=False)
    attempts = _Attempts(key, spec, request_id=request_id, route=route, slug=slug)
    completion = attempts.complete(request)
    output: Any = _text(completion)
    if spec.output.mode == "json":
        output = _json_output(attempts, request, completion)
    return Answer(
        output=output,
        usage=attempts.usage,
        version=version.version,
        model=attempts.model,
        calls=attempts.calls,
        messages=tuple(messages),
    )


def run_stream(
    key: ApiKey, version: Version, variables: dict[str, Any], *, request_id: str, route: str, slug: str
) -> StreamedAnswer:
    """Admit and start the model call; errors before the first chunk (400, 402, 403, a vendor
    down with no fallback) are still plain HTTP answers."""
    spec = version.design
    schemas.validate_input(spec.input_schema, variables)
    if spec.output.mode == "json":
        # A JSON answer is checked against its schema (and retried) before anyone sees it;
        # streamed deltas could not be taken back.
        raise InvalidRequest(
            "This API answers JSON checked against its output schema, which needs the whole "
            "answer; call it without stream",
            code="stream_unsupported",
            param="stream",
        )
    request = build_request(spec, render_messages(spec.prompt, variables), spec.model, stream=True)
    attempts = _Attempts(key, spec, request_id=request_id, route=route, slug=slug)
    stream = attempts.stream(request)
    return StreamedAnswer(
        stream=stream, version=version.version, model=attempts.model, calls=attempts.calls, route=route
    )


def _text(completion: ChatCompletion) -> str:
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


class _Attempts:
    """Model calls for one prompt API call (the first, then retries of a broken JSON answer),
    usage summed. Each goes through :mod:`aigw.invocation` with the API's fallback model."""

    def __init__(self, key: ApiKey, spec: Design, *, request_id: str, route: str, slug: str) -> None:
        self.key = key
        self.spec = spec
        self.request_id = request_id
        self.route = route
        self.slug = slug
        self.tried: list[str] = []
        self.model = spec.model
        self.usage = Usage()

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return (self.spec.fallback_model,) if self.spec.fallback_model else ()

    @property
    def calls(self) -> int:
        """Model calls billed to the caller so far (fallbacks and retries each count)."""
        return len(self.tried)

    def _next_id(self) -> str:
        return self.request_id if not self.tried else f"{self.request_id}-{self.calls}"

    def complete(self, request: ChatRequest) -> ChatCompletion:
        completion = invocation.chat_completion(
            self.key,
            request,
            request_id=self._next_id(),
            route=self.route,
            api_slug=self.slug,
            fallbacks=self.fallbacks,
            tried=self.tried,
        )
        got = completion.usage
        self.usage = Usage(
            prompt_tokens=self.usage.prompt_tokens + got.prompt_tokens,
            completion_tokens=self.usage.completion_tokens + got.completion_tokens,
            total_tokens=self.usage.total_tokens + got.total_tokens,
        )
        self.model = completion.model  # the model that answered (the fallback, if it did)
        return completion

    def stream(self, request: ChatRequest) -> invocation.MeteredStream:
        # Vendor faults before the first chunk raise here, so the fallback can take over.
        stream = invocation.stream_chat_completion(
            self.key,
            request,
            request_id=self._next_id(),
            route=self.route,
            api_slug=self.slug,
            fallbacks=self.fallbacks,
            tried=self.tried,
        )
        self.model = stream.model_name
        return stream


def _json_output(attempts: _Attempts, request: ChatRequest, completion: ChatCompletion) -> Any:
    schema = attempts.spec.output.json_schema or {}
    retries = attempts.spec.output.retries
    conversation = list(request.messages)
    while True:
        text = _text(completion)
        problem: str
        try:
            value = json.loads(_strip_fence(text))
        except json.JSONDecodeError as exc:
            problem = f"it is not JSON ({exc.msg})"
        else:
            found = schemas.first_error(schema, value)
            if found is None:
                return value
            where = f" at '{found[0]}'" if found[0] else ""
            problem = f"it does not match the output schema{where}: {found[1]}"
        if retries <= 0:
            raise UpstreamError(
                f"The model's answer broke the API's output contract: {problem}",
                code="output_invalid",
                extra={"usage": {**attempts.usage.model_dump(exclude_none=True), "calls": attempts.calls}},
            )
        retries -= 1
        conversation += [
            ChatMessage(role="assistant", content=text),
            ChatMessage(
                role="user",
                content=f"That answer is invalid: {problem}. Reply with only the JSON value, "
                f"matching this JSON Schema: {json.dumps(schema)}",
            ),
        ]
        completion = attempts.complete(on_model(request, attempts.model, messages=conversation))


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence despite being told not to."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped[3:-3]
        stripped = stripped.removeprefix("json").strip()
    return stripped
