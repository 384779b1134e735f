"""A Lambda runtime loop for Python handlers whose answers stream (API Gateway REST
``ResponseTransferMode: STREAM``).

Lambda's managed Python runtime can only return a whole result; response streaming needs a
runtime that speaks the Runtime API's streaming mode. The function keeps ``Runtime:
python3.13``: ``AWS_LAMBDA_EXEC_WRAPPER`` points at ``bin/streaming-runtime`` in this layer,
which starts this loop with the managed interpreter instead of the stock one (the same
mechanism the Lambda Web Adapter uses). See docs/decisions/0006-streaming-on-lambda.md.

Every answer goes out in the format API Gateway's streaming Lambda integration reads: a JSON
prelude (``statusCode``, ``headers``), eight NUL bytes, then the body, sent with
``Lambda-Runtime-Function-Response-Mode: streaming`` and chunked transfer encoding. A
handler's dict result is sent as one piece; a :class:`aigw.streaming.StreamingResponse` piece
by piece as it is produced.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from aigw import request_context
from aigw.streaming import StreamingResponse

API_VERSION = "2018-06-01"
DELIMITER = b"\x00" * 8
CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"

Handler = Callable[[dict[str, Any], Any], Any]


class Context:
    """The Lambda context attributes handlers and Powertools read."""

    def __init__(self, headers: httpx.Headers) -> None:
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn", "")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = None
        self.identity = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def encode_result(result: Any) -> StreamingResponse:
    """Any handler answer as a stream: proxy dicts become one-piece streams."""
    if isinstance(result, StreamingResponse):
        return result
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise TypeError("handler returned neither a proxy result nor a StreamingResponse")
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    response = StreamingResponse(result["statusCode"], headers, iter([body]))
    multi = result.get("multiValueHeaders")
    if multi:
        response.headers.update({k: ", ".join(map(str, v)) for k, v in multi.items() if k not in headers})
    return response


def framed(response: StreamingResponse) -> Iterator[bytes]:
    yield json.dumps(response.prelude()).encode() + DELIMITER
    for piece in response.body:
        if piece:
            yield piece


def _error_body(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-10:],
    }


class Runtime:
    def __init__(self, api: str, handler: Handler, client: httpx.Client | None = None) -> None:
        self._base = f"http://{api}/{API_VERSION}/runtime"
        self._handler = handler
        # No read timeout: /next blocks until the next invocation arrives.
        self._client = client or httpx.Client(timeout=httpx.Timeout(None, connect=5.0))

    def next_invocation(self) -> tuple[dict[str, Any], Context]:
        response = self._client.get(f"{self._base}/invocation/next")
        response.raise_for_status()
        trace = response.headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        event: dict[str, Any] = response.json()
        return event, Context(response.headers)

    def run_once(self) -> None:
        event, context = self.next_invocation()
        request_id = context.aws_request_id
        deferred = request_context.open_deferred()
        try:
            try:
                stream = encode_result(self._handler(event, context))
            except Exception as exc:
                self._client.post(
                    f"{self._base}/invocation/{request_id}/error",
                    json=_error_body(exc),
                    headers={"Lambda-Runtime-Function-Error-Type": "Unhandled"},
                )
                return
            finally:
                request_context.close_deferred()
            self._respond(request_id, stream)
        finally:
            # The caller has its answer; Lambda keeps this environment running (and billed)
            # until the next /next, which is when deferred work such as a meter's settle runs.
            request_context.run_deferred(deferred)

    def _respond(self, request_id: str, stream: StreamingResponse) -> None:
        try:
            self._client.post(
                f"{self._base}/invocation/{request_id}/response",
                content=framed(stream),
                headers={
                    "Lambda-Runtime-Function-Response-Mode": "streaming",
                    "Content-Type": CONTENT_TYPE,
                },
            )
        except httpx.HTTPError as exc:
            # The caller is gone or the invocation was cut off; the stream is still closed
            # below, which settles its meter.
            sys.stderr.write(f"aigw runtime: streaming the response failed: {exc!r}\n")
        finally:
            stream.close()

    def run(self) -> None:
        while True:
            self.run_once()


def load_handler(name: str, task_root: str) -> Handler:
    sys.path.insert(0, task_root)
    module_name, _, attr = name.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name.replace("/", ".")), attr)
    return handler


def main() -> None:
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    try:
        handler = load_handler(os.environ["_HANDLER"], os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    except Exception as exc:
        httpx.post(
            f"http://{api}/{API_VERSION}/runtime/init/error",
            json=_error_body(exc),
            headers={"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
        )
        raise
    Runtime(api, handler).run()


if __name__ == "__main__":
    main()
