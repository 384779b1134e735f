"""A Lambda runtime loop for Python handlers whose answers stream (API Gateway REST
``ResponseTransferMode: STREAM``).

Lambda's managed Python runtime can only return a whole result; response streaming needs a
runtime that speaks the Runtime API's streaming mode. The function keeps ``Runtime:
python3.13``: ``AWS_LAMBDA_EXEC_WRAPPER`` points at ``bin/streaming-runtime`` in this layer,
which starts this loop with the interpreter Lambda passes it instead of the stock bootstrap
(the mechanism the Lambda Web Adapter uses). See docs/decisions/0006-streaming-on-lambda.md.

Every answer goes out in the format API Gateway's streaming Lambda integration reads: a JSON
prelude (``statusCode``, ``headers``), eight NUL bytes, then the body, POSTed with
``Lambda-Runtime-Function-Response-Mode: streaming`` in HTTP/1.1 chunks on a connection of its
own, closed once the answer is written (as the Runtime API asks). A handler's dict result is one
chunk after the prelude; a :class:`aigw.streaming.StreamingResponse` one chunk per piece, as
it is produced.

Failures, as the Runtime API specifies them:

- the handler raises, or returns something that is not an answer: nothing was sent, so the
  invocation is reported to ``/invocation/{id}/error`` with the X-Ray error cause header;
- the body raises after the prelude went out: every streamed POST declares ``Trailer:
  Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body`` up front, so the
  stream ends with an error event in the route's own error shape (for event streams) and those
  two trailers (type, base64 JSON body);
- the caller is gone or the invocation timed out (writes to the Runtime API fail): the stream
  is closed, which settles its meter.

Each is logged as one record and the loop goes on to the next invocation in the same process.
Logs are unbuffered; records of this loop (tracebacks included) are one CloudWatch event each:
framed on Lambda's telemetry descriptor when there is one, as the stock runtime writes them.
Started under SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``), the loop runs the
before-snapshot hooks, waits on ``/runtime/restore/next``, then runs the after-restore hooks
(new random state, new connections) before asking for the first invocation.

Only the standard library is imported here: the handler brings what it uses, so the loop adds
nothing to a cold start but itself.
"""

from __future__ import annotations

import base64
import gc
import http.client
import importlib
import io
import json
import logging
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

if TYPE_CHECKING:
    from aigw.streaming import StreamingResponse

API_VERSION = "2018-06-01"
DELIMITER = b"\x00" * 8
CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
XRAY_CAUSE = "Lambda-Runtime-Function-XRay-Error-Cause"
# The Java and Ruby runtime clients drop the X-Ray cause past 1 MiB; ours stays far below.
XRAY_CAUSE_MAX_BYTES = 64 * 1024
_STACK_FRAMES = 50

Handler = Callable[[dict[str, Any], Any], Any]

logger = logging.getLogger("aigw.runtime")


class Context:
    """The Lambda context attributes handlers and Powertools read."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn", "")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = _json_header(headers.get("lambda-runtime-client-context"))
        self.identity = _json_header(headers.get("lambda-runtime-cognito-identity"))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def encode_result(result: Any) -> StreamingResponse:
    """Any handler answer as a stream: proxy dicts become one-piece streams."""
    from aigw.streaming import StreamingResponse

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


def prelude(response: StreamingResponse) -> bytes:
    """The JSON metadata and the delimiter that precede the body."""
    return json.dumps(response.prelude()).encode() + DELIMITER


def framed(response: StreamingResponse) -> Iterator[bytes]:
    """The whole answer as the integration reads it: prelude, then each non-empty piece."""
    yield prelude(response)
    for piece in response.body:
        if piece:
            yield piece


# ---- errors as the Runtime API and X-Ray want them ------------------------------------------


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return traceback.extract_tb(exc.__traceback__)[-_STACK_FRAMES:]


def error_body(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(_frames(exc)),
    }


def xray_cause(exc: BaseException) -> str | None:
    """The ``Lambda-Runtime-Function-XRay-Error-Cause`` document (what the stock Python
    runtime sends), or None when it would not fit in a header."""
    frames = _frames(exc)
    cause = {
        "working_directory": os.getcwd(),
        "exceptions": [
            {
                "type": type(exc).__name__,
                "message": str(exc),
                "stack": [{"label": f.name, "path": f.filename, "line": f.lineno} for f in frames],
            }
        ],
        "paths": sorted({f.filename for f in frames}),
    }
    text = json.dumps(cause, separators=(",", ":"))
    return text if len(text.encode()) <= XRAY_CAUSE_MAX_BYTES and "\n" not in text else None


# ---- the Runtime API --------------------------------------------------------------------------


class RuntimeApiError(Exception):
    """The Runtime API answered with an unexpected status."""


@dataclass(frozen=True)
class Invocation:
    request_id: str
    event: dict[str, Any]
    headers: dict[str, str]


class RuntimeApi:
    """A client of Lambda's Runtime API on the standard library's ``http.client``.

    /next, /restore/next and buffered posts share one keep-alive connection (/next has no
    timeout: it blocks until there is work). Each streamed response gets a connection of its own,
    closed once the response is written."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port = host or address, int(port or 80)
        self._prefix = f"/{API_VERSION}/runtime"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port)
        return self._conn

    def reconnect(self) -> None:
        """Drop the keep-alive connection (after a SnapStart restore, or a broken one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                # The kept-alive connection went away (it idles between invocations): once more
                # on a new one; a second failure means the Runtime API itself is gone.
                self.reconnect()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.reconnect()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def next_invocation(self) -> Invocation:
        status, headers, data = self._request("GET", "/invocation/next")
        if status != 200:
            raise RuntimeApiError(f"/invocation/next answered {status}: {data[:200]!r}")
        event: dict[str, Any] = json.loads(data) if data else {}
        return Invocation(headers.get("lambda-runtime-aws-request-id", ""), event, headers)

    def restore_next(self) -> None:
        status, _, data = self._request("GET", "/restore/next")
        if status != 200:
            raise RuntimeApiError(f"/restore/next answered {status}: {data[:200]!r}")

    def _post_error(
        self, path: str, exc: BaseException, error_type: str, *, invocation: bool = False
    ) -> None:
        headers = {ERROR_TYPE: error_type, "Content-Type": "application/json"}
        cause = xray_cause(exc) if invocation else None
        if cause is not None:
            headers[XRAY_CAUSE] = cause
        # An invocation's error names the exception; init and restore errors their category.
        body = json.dumps(error_body(exc, None if invocation else error_type)).encode()
        status, _, data = self._request("POST", path, body, headers)
        if status >= 300:
            logger.warning("the Runtime API refused the error report to %s: %s %r", path, status, data[:200])

    def invocation_error(self, request_id: str, exc: BaseException) -> None:
        self._post_error(f"/invocation/{request_id}/error", exc, "Unhandled", invocation=True)

    def init_error(self, exc: BaseException, error_type: str) -> None:
        self._post_error("/init/error", exc, error_type)

    def restore_error(self, exc: BaseException) -> None:
        self._post_error("/restore/error", exc, "Runtime.AfterRestoreError")

    def stream_response(
        self,
        request_id: str,
        head: bytes,
        body: Iterator[Any],
        on_failure: Callable[[BaseException], bytes | None],
    ) -> BaseException | None:
        """POST ``head`` then every piece of ``body`` as its own chunk. A piece that fails to
        come (the body raised) ends the chunked body with ``on_failure``'s last piece and the
        error trailers; that exception is returned. Transport failures raise ``OSError`` or
        ``http.client.HTTPException``."""
        conn = http.client.HTTPConnection(self._host, self._port)
        failure: BaseException | None = None
        try:
            conn.putrequest(
                "POST", f"{self._prefix}/invocation/{request_id}/response", skip_accept_encoding=True
            )
            conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
            conn.putheader("Content-Type", CONTENT_TYPE)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.putheader("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}")
            conn.endheaders()
            _chunk(conn, head)
            while True:
                try:
                    piece = next(body)
                    data = piece if isinstance(piece, bytes) else bytes(piece)
                except StopIteration:
                    break
                except Exception as exc:  # the function's own failure, mid-stream
                    failure = exc
                    break
                if data:
                    _chunk(conn, data)
            if failure is None:
                conn.send(b"0\r\n\r\n")
            else:
                last = on_failure(failure)
                if last:
                    _chunk(conn, last)
                detail = base64.b64encode(json.dumps(error_body(failure)).encode()).decode()
                kind = "Function." + (re.sub(r"[^A-Za-z0-9_]", "", type(failure).__name__) or "Error")
                conn.send(f"0\r\n{ERROR_TYPE}: {kind}\r\n{ERROR_BODY}: {detail}\r\n\r\n".encode())
            response = conn.getresponse()
            data = response.read()
            if response.status >= 300:
                logger.warning("the Runtime API refused the response: %s %r", response.status, data[:200])
        finally:
            conn.close()
        return failure


def _chunk(conn: http.client.HTTPConnection, data: bytes) -> None:
    conn.send(b"%x\r\n%s\r\n" % (len(data), data))


# ---- SnapStart ------------------------------------------------------------------------------

_before_snapshot: list[Callable[[], None]] = []
_after_restore: list[Callable[[], None]] = []


def before_snapshot(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` before Lambda snapshots the initialised process (SnapStart only); hooks run
    in reverse order of registration."""
    _before_snapshot.append(hook)
    return hook


def after_restore(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` in each environment restored from the snapshot, before its first invocation."""
    _after_restore.append(hook)
    return hook


def _warm_before_snapshot() -> None:
    """Work every first request does, moved into the snapshot: the DynamoDB client (created,
    never connected: init opens no connection, so none can be stale after a restore)."""
    table = sys.modules.get("aigw.table")
    if table is not None:
        table.gateway_table()


def _fresh_after_restore() -> None:
    """What a restored environment must not share with the snapshot: the random state, and
    pooled connections, which would be stale (the vendors' HTTP clients are dropped and built
    again on first use; the DynamoDB client is kept, its connection pool emptied)."""
    random.seed()
    providers = sys.modules.get("aigw.providers")
    if providers is not None:
        providers.reset()
    table = sys.modules.get("aigw.table")
    if table is not None and table.gateway_table.cache_info().currsize:
        endpoint = getattr(table.gateway_table().client, "_endpoint", None)
        session = getattr(endpoint, "http_session", None)
        if session is not None:
            session.close()
        else:
            table.reset()


def _library_hooks() -> tuple[list[Any], list[Any]]:
    """Hooks registered with AWS's ``snapshot_restore_py`` (bundled with the managed runtime)."""
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]
    except ImportError:
        return [], []
    return snapshot_restore_py.get_before_snapshot(), snapshot_restore_py.get_after_restore()


def snapshot_and_restore(api: RuntimeApi) -> None:
    """The SnapStart handshake: before-snapshot hooks, ``/restore/next`` (which returns in the
    restored environment), after-restore hooks. A failing hook ends the process, as the stock
    runtime does (Lambda then reports the init or restore error)."""
    library_before, library_after = _library_hooks()
    try:
        for hook in reversed([_warm_before_snapshot, *_before_snapshot]):
            hook()
        while library_before:
            func, args, kwargs = library_before.pop()
            func(*args, **kwargs)
        api.restore_next()
    except Exception as exc:
        logger.exception("a before-snapshot hook failed")
        api.init_error(exc, "Runtime.BeforeSnapshotError")
        sys.exit(64)
    api.reconnect()
    try:
        for hook in [_fresh_after_restore, *_after_restore]:
            hook()
        for func, args, kwargs in library_after:
            func(*args, **kwargs)
    except Exception as exc:
        logger.exception("an after-restore hook failed")
        api.restore_error(exc)
        sys.exit(65)


# ---- the loop -------------------------------------------------------------------------------


class Runtime:
    def __init__(self, api: str | RuntimeApi, handler: Handler) -> None:
        self.api = api if isinstance(api, RuntimeApi) else RuntimeApi(api)
        self._handler = handler

    def next_invocation(self) -> tuple[Invocation, Context]:
        invocation = self.api.next_invocation()
        trace = invocation.headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        _RecordHandler.request_id = invocation.request_id
        return invocation, Context(invocation.headers)

    def run_once(self) -> None:
        from aigw import request_context

        invocation, context = self.next_invocation()
        deferred = request_context.open_deferred()
        try:
            try:
                stream = encode_result(self._handler(invocation.event, context))
                head = prelude(stream)
            except Exception as exc:
                logger.exception("the handler failed; invocation error reported")
                try:
                    self.api.invocation_error(invocation.request_id, exc)
                except (OSError, http.client.HTTPException) as lost:
                    logger.warning("reporting the invocation error failed: %r", lost)
                return
            finally:
                request_context.close_deferred()
            self._respond(invocation, stream, head)
        finally:
            # The caller has its answer; Lambda keeps this environment running (and billed)
            # until the next /next, which is when deferred work such as a meter's settle runs.
            request_context.run_deferred(deferred)

    def _respond(self, invocation: Invocation, stream: StreamingResponse, head: bytes) -> None:
        def last_event(failure: BaseException) -> bytes | None:
            logger.error(
                "the answer failed after its first bytes were sent; it ends with an error",
                exc_info=failure,
            )
            return _failure_event(stream, invocation.event)

        try:
            self.api.stream_response(invocation.request_id, head, iter(stream.body), last_event)
        except (OSError, http.client.HTTPException) as exc:
            # The caller is gone or the invocation was cut off; the stream is still closed
            # below, which settles its meter.
            logger.warning("streaming the response failed: %r", exc)
        finally:
            try:
                stream.close()
            except Exception:
                logger.exception("closing the answer's stream failed")

    def run(self) -> NoReturn:
        while True:
            self.run_once()


def _failure_event(stream: StreamingResponse, event: Mapping[str, Any]) -> bytes | None:
    """An event stream's last event after an unexpected failure, in the route's error shape."""
    content_type = next((v for k, v in stream.headers.items() if k.lower() == "content-type"), "")
    if not content_type.startswith("text/event-stream"):
        return None
    try:
        from aigw import streaming

        return streaming.failure_event(str(event.get("path") or ""))
    except Exception:
        logger.exception("the stream's error event could not be built")
        return None


# ---- logs -----------------------------------------------------------------------------------

# Lambda's telemetry log frame types (text), by level: what the stock runtime writes.
_FRAME_TYPES = {
    logging.DEBUG: 0xA55A000B,
    logging.INFO: 0xA55A000F,
    logging.WARNING: 0xA55A0013,
    logging.ERROR: 0xA55A0017,
    logging.CRITICAL: 0xA55A001B,
}


class _RecordHandler(logging.Handler):
    """One CloudWatch event per log record, however many lines it has (a traceback): a frame
    on Lambda's telemetry descriptor, or, without one, one line whose inner newlines are
    carriage returns (Lambda splits stdout into events at newlines)."""

    request_id = ""

    def __init__(self, sink: BinaryIO | None, stream: Any) -> None:
        super().__init__()
        self._sink = sink
        self._stream = stream
        # The stock runtime's text format: level, UTC time, request id, message.
        formatter = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
        self.setFormatter(formatter)

    def format(self, record: logging.LogRecord) -> str:
        record.aws_request_id = self.request_id
        return super().format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if self._sink is not None:
                data = text.encode()
                level = min(_FRAME_TYPES, key=lambda lv: abs(lv - record.levelno))
                self._sink.write(
                    _FRAME_TYPES[level].to_bytes(4, "big")
                    + len(data).to_bytes(4, "big")
                    + (time.time_ns() // 1000).to_bytes(8, "big")
                    + data
                )
            else:
                self._stream.write(text.replace("\r\n", "\r").replace("\n", "\r") + "\n")
                self._stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging() -> None:
    """Unbuffered stdout and stderr (print and Powertools write there, one line per record),
    and this loop's and other stdlib loggers' records as single events."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True, write_through=True)
    fd = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    sink: BinaryIO | None = None
    if fd:
        try:
            sink = os.fdopen(int(fd), "wb", buffering=0)
        except (OSError, ValueError):
            sink = None  # then stdout, one line per record
    root = logging.getLogger()
    root.addHandler(_RecordHandler(sink, sys.stdout))
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else logging.WARNING)
    # This loop's own records get a handler of their own: Powertools loggers named "aigw..."
    # filter "aigw" records out of the root's handlers (their own handlers print them), and
    # would otherwise take ours.
    logger.addHandler(_RecordHandler(sink, sys.stdout))
    logger.setLevel(logging.INFO)
    logger.propagate = False


# ---- start ----------------------------------------------------------------------------------


def load_handler(name: str, task_root: str) -> Handler:
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    module_name, _, attr = name.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name.replace("/", ".")), attr)
    return handler


def _init_error_type(exc: BaseException) -> str:
    if isinstance(exc, ImportError | SyntaxError):
        return "Runtime.ImportModuleError"
    if isinstance(exc, AttributeError | ValueError):
        return "Runtime.HandlerNotFound"
    return "Runtime.InitError"


def main() -> None:
    # Importing the handler allocates ~55k long-lived objects (modules, classes, pydantic
    # schemas): the cyclic collector would scan them again and again while they load (~20 ms of
    # CPU here) for a few hundred unreachable ones. Collection is off while they load, then they
    # are frozen (never scanned again; the few garbage objects stay) and collection resumes.
    gc.disable()
    configure_logging()
    api = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load_handler(os.environ["_HANDLER"], os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    except Exception as exc:
        logger.exception("the handler could not be loaded")
        api.init_error(exc, _init_error_type(exc))
        sys.exit(1)
    finally:
        gc.freeze()
        gc.enable()
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        snapshot_and_restore(api)
    Runtime(api, handler).run()


if __name__ == "__main__":
    # Run as ``python -m aigw.lambda_runtime``: start the module the handler imports (hooks it
    # registers, the logger), not this ``__main__`` copy of it.
    from aigw.lambda_runtime import main as start

    start()
