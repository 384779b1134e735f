"""Streamed HTTP answers, independent of where they are served.

A handler returns a :class:`StreamingResponse` instead of a proxy-result dict when the body
is produced while the caller waits. Two servers know how to send it: the Lambda streaming
runtime (:mod:`aigw.lambda_runtime`, API Gateway ``ResponseTransferMode: STREAM``) and the
local runner. Both close ``body`` when they stop, also when the client went away, which is
what settles a streamed call's meter.

Routes run inside Powertools' resolver, which can only return proxy dicts; a route hands its
stream over with :func:`respond` and :func:`aigw.web.handle` returns it in place of the dict.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response

from aigw import problems, sse
from aigw.errors import GatewayError

if TYPE_CHECKING:
    from aigw.invocation import MeteredStream


@dataclass
class StreamingResponse:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes]
    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        """Release everything: servers call it once they stop sending, whatever the reason.

        ``on_close`` runs even when the body generator never started (closing an unstarted
        generator runs none of its code), so a stream that was never sent is still settled."""
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            if self.on_close is not None:
                self.on_close()

    def prelude(self) -> dict[str, Any]:
        """The metadata API Gateway's streaming Lambda integration expects before the body."""
        return {"statusCode": self.status, "headers": dict(self.headers)}


def event_stream(body: Iterator[bytes], on_close: Callable[[], None] | None = None) -> StreamingResponse:
    headers = {
        "Content-Type": sse.CONTENT_TYPE,
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    return StreamingResponse(200, headers, body, on_close)


logger = Logger(service="aigw")


def failure(exc: Exception) -> GatewayError:
    """What a stream's last event says about a failure after the first byte: a gateway error as
    it is, anything else (a bug) logged and reported without its details."""
    if isinstance(exc, GatewayError):
        return exc
    logger.exception("stream failed after its first byte")
    return GatewayError("The gateway hit an internal error; it has been logged")


_pending: contextvars.ContextVar[StreamingResponse | None] = contextvars.ContextVar(
    "aigw_stream", default=None
)


def respond(stream: StreamingResponse) -> Response[str]:
    """Hand a stream to :func:`aigw.web.handle`; the returned placeholder is never sent."""
    _pending.set(stream)
    return Response(stream.status, sse.CONTENT_TYPE, "")


def take_pending() -> StreamingResponse | None:
    stream = _pending.get()
    _pending.set(None)
    return stream


def discard_pending() -> None:
    stream = take_pending()
    if stream is not None:
        stream.close()


def openai_events(stream: MeteredStream, *, include_usage: bool) -> Iterator[bytes]:
    """A metered stream as OpenAI's server-sent events: chunks, the usage chunk when
    ``stream_options.include_usage`` asked for it, then ``data: [DONE]``. A failure mid-stream
    (the vendor's, a malformed vendor event) becomes an ``error`` event, as OpenAI sends it, and
    the stream ends there."""
    try:
        for chunk in stream:
            if chunk.choices:
                body = chunk.model_dump(exclude_none=True)
                for dumped, choice in zip(body["choices"], chunk.choices, strict=True):
                    dumped["finish_reason"] = choice.finish_reason  # OpenAI sends null, not nothing
                yield sse.encode(body)
            elif include_usage:
                yield sse.encode(chunk)
        yield sse.DONE
    except Exception as exc:  # the status line is sent: the failure is the last event
        err = failure(exc)
        error = {"message": err.message, "type": err.error_type, "param": err.param, "code": err.code}
        yield sse.encode({"error": error})
    finally:
        stream.close()


def failure_event(path: str) -> bytes:
    """The last event of a stream whose producer failed unexpectedly after the first bytes
    went out (a bug: vendor failures already end in an error event of their own), in the shape
    the route's clients read errors in: OpenAI's on ``/v1``, Anthropic's ``error`` event on
    ``/v1/messages``, ``{"error": problem}`` elsewhere (prompt APIs)."""
    err = GatewayError("The gateway failed while streaming this answer; it has been logged")
    _, body = problems.error_body(err, path)
    if body.get("type") == "error":  # Anthropic's shape
        return sse.encode(body, "error")
    if isinstance(body.get("error"), dict):  # OpenAI's
        return sse.encode(body)
    return sse.encode({"error": body})
