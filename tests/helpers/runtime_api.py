"""Lambda's Runtime API on loopback, strict: what a runtime loop sends is checked against the
documented protocol (docs: "Using the Lambda runtime API for custom runtimes", "Implementing
response streaming in a custom runtime", SnapStart's ``/runtime/restore/next``).

- ``GET /runtime/invocation/next`` hands out queued invocations one at a time; asking again
  before the current one was answered is a violation. Under SnapStart it must come after
  ``GET /runtime/restore/next``, which is itself only valid under SnapStart, once.
- ``POST /runtime/invocation/{id}/response`` must name the invocation handed out. A streamed one
  (``Lambda-Runtime-Function-Response-Mode: streaming``) must be chunked, with the body parsed
  as HTTP/1.1 chunked framing (sizes, CRLFs, the last chunk); trailers are accepted only if the
  ``Trailer`` header declared them, the error body must be base64 JSON, and the connection must
  not carry another request afterwards (the runtime closes it).
- ``POST /runtime/invocation/{id}/error`` is only valid before a response, with an error type
  header and a JSON error body; an X-Ray cause header must be the documented JSON document.
- ``POST /runtime/init/error`` and ``/runtime/restore/error`` are recorded.

Every departure is recorded in :attr:`StrictRuntimeApi.violations`, which tests assert empty.
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    connection: int = 0
    at: float = 0.0

    @property
    def streamed(self) -> bool:
        return self.headers.get("lambda-runtime-function-response-mode") == "streaming"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Outcome:
    """How one invocation ended: its response or its error report."""

    request_id: str
    kind: str  # "response" or "error"
    request: Request

    @property
    def error_trailer(self) -> dict[str, Any] | None:
        raw = self.request.trailers.get("lambda-runtime-function-error-body")
        return None if raw is None else json.loads(base64.b64decode(raw))


class StrictRuntimeApi:
    def __init__(self, *, snap_start: bool = False) -> None:
        self.snap_start = snap_start
        self.violations: list[str] = []
        self.requests: list[Request] = []
        self.outcomes: dict[str, Outcome] = {}
        self.init_errors: list[Request] = []
        self.restore_errors: list[Request] = []
        self.restore_requests = 0
        # Set: the connection of each streamed response is cut after its first chunk, as when
        # the caller hangs up or the invocation times out (outcome kind "cut").
        self.cut_streams = False
        # Called with each outcome as it arrives, before the runtime gets its answer.
        self.on_outcome: Callable[[Outcome], None] | None = None
        # Called with the count of /invocation/next requests as each arrives (the bench reads
        # the process's CPU time there: the end of its init, of its first invocation...).
        self.on_next: Callable[[int], None] | None = None
        self.restore = threading.Event()  # set: /restore/next returns (the environment is restored)
        if not snap_start:
            self.restore.set()
        self._queue: queue.Queue[tuple[str, dict[str, Any], dict[str, str]]] = queue.Queue()
        self._current: str | None = None
        self._answered: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._next_calls = 0
        self._connections = 0
        self._closing = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- driving it ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> StrictRuntimeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing = True
        self._server.shutdown()
        self._server.server_close()

    def invoke(
        self, event: dict[str, Any], *, request_id: str | None = None, headers: dict[str, str] | None = None
    ) -> str:
        request_id = request_id or f"inv-{self._queue.qsize() + len(self.outcomes) + 1}"
        self._queue.put((request_id, event, headers or {}))
        return request_id

    def wait(self, request_id: str, timeout: float = 60) -> Outcome:
        deadline = time.monotonic() + timeout
        with self._done:
            while request_id not in self.outcomes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"invocation {request_id} was not answered within {timeout} s")
                self._done.wait(left)
            return self.outcomes[request_id]

    def wait_for_next(self, count: int, timeout: float = 60) -> None:
        """Until the runtime has asked for its ``count``-th invocation (so it is idle, waiting)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._next_calls < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the runtime did not ask for invocation {count} in {timeout} s")
                self._done.wait(left)

    # ---- the protocol -------------------------------------------------------------------

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(request)
        path = request.path
        if not path.startswith(PREFIX + "/"):
            self.violation(f"unknown path {request.method} {path}")
            return 404, {}, b'{"errorType":"InvalidRequest"}'
        route = path[len(PREFIX) :]
        if request.method == "GET" and route == "/invocation/next":
            return self._next()
        if request.method == "GET" and route == "/restore/next":
            return self._restore_next()
        if request.method == "POST" and route == "/init/error":
            self._check_error_report(request, "init error")
            self.init_errors.append(request)
            return 202, {}, b'{"status":"OK"}'
        if request.method == "POST" and route == "/restore/error":
            self._check_error_report(request, "restore error")
            self.restore_errors.append(request)
            return 202, {}, b'{"status":"OK"}'
        parts = route.split("/")
        if request.method == "POST" and len(parts) == 4 and parts[1] == "invocation":
            return self._invocation_result(parts[2], parts[3], request)
        self.violation(f"unknown path {request.method} {path}")
        return 404, {}, b'{"errorType":"InvalidRequest"}'

    def _next(self) -> tuple[int, dict[str, str], bytes]:
        with self._done:
            if self._current is not None and self._current not in self._answered:
                self.violations.append(f"/invocation/next before invocation {self._current} was answered")
            if self.snap_start and self.restore_requests == 0:
                self.violations.append("/invocation/next under SnapStart before /restore/next")
            self._next_calls += 1
            count = self._next_calls
        if self.on_next is not None:
            self.on_next(count)
        with self._done:
            self._done.notify_all()
        while True:
            try:
                request_id, event, extra = self._queue.get(timeout=0.2)
                break
            except queue.Empty:
                if self._closing:
                    return 503, {}, b""
        with self._lock:
            self._current = request_id
        body = json.dumps(event).encode()
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 120_000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:aigw",
            "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{request_id:0>24};Parent=0;Sampled=1",
            "Content-Type": "application/json",
            **extra,
        }
        return 200, headers, body

    def _restore_next(self) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.restore_requests += 1
            if not self.snap_start:
                self.violations.append("/restore/next outside SnapStart")
            elif self.restore_requests > 1:
                self.violations.append("/restore/next called twice")
            elif self._next_calls:
                self.violations.append("/restore/next after /invocation/next")
        self.restore.wait()
        return 200, {}, b""

    def _invocation_result(
        self, request_id: str, kind: str, request: Request
    ) -> tuple[int, dict[str, str], bytes]:
        with self._done:
            if request_id != self._current:
                self.violations.append(f"{kind} for {request_id}, which was not handed out")
                return 400, {}, b'{"errorType":"InvalidRequestID"}'
            if request_id in self._answered:
                self.violations.append(f"second {kind} for {request_id}")
                return 400, {}, b'{"errorType":"InvalidStateTransition"}'
        if kind == "response":
            self._check_response(request)
        elif kind == "error":
            self._check_error_report(request, "invocation error")
            cause = request.headers.get("lambda-runtime-function-xray-error-cause")
            if cause is not None:
                self._check_xray_cause(cause)
        else:
            self.violation(f"unknown invocation endpoint {kind}")
            return 404, {}, b""
        outcome = Outcome(request_id, kind, request)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        with self._done:
            self._answered.add(request_id)
            self.outcomes[request_id] = outcome
            self._done.notify_all()
        return 202, {}, b'{"status":"OK"}'

    def _check_response(self, request: Request) -> None:
        if not request.streamed:
            return
        if request.headers.get("transfer-encoding", "").lower() != "chunked":
            self.violation("a streamed response without Transfer-Encoding: chunked")
        if request.headers.get("content-type") != "application/vnd.awslambda.http-integration-response":
            self.violation(f"a streamed response with Content-Type {request.headers.get('content-type')!r}")
        if request.trailers:
            body = request.trailers.get("lambda-runtime-function-error-body")
            if "lambda-runtime-function-error-type" not in request.trailers or body is None:
                self.violation(f"incomplete error trailers {sorted(request.trailers)}")
            else:
                try:
                    decoded = json.loads(base64.b64decode(body, validate=True))
                    assert isinstance(decoded, dict)
                    assert {"errorMessage", "errorType"} <= set(decoded)
                except (binascii.Error, ValueError, AssertionError):
                    self.violation("Lambda-Runtime-Function-Error-Body is not base64 JSON of an error")

    def _check_error_report(self, request: Request, what: str) -> None:
        if not request.headers.get("lambda-runtime-function-error-type"):
            self.violation(f"{what} without Lambda-Runtime-Function-Error-Type")
        try:
            body = request.json()
            assert isinstance(body, dict)
            assert isinstance(body.get("errorMessage"), str)
            assert isinstance(body.get("errorType"), str)
        except (ValueError, AssertionError):
            self.violation(f"{what} body is not an error document: {request.body[:200]!r}")

    def _check_xray_cause(self, raw: str) -> None:
        try:
            cause = json.loads(raw)
            assert isinstance(cause["working_directory"], str)
            assert isinstance(cause["paths"], list)
            (exception,) = cause["exceptions"]
            assert isinstance(exception["type"], str)
            assert isinstance(exception["message"], str)
            for frame in exception["stack"]:
                assert {"label", "path", "line"} <= set(frame)
        except (ValueError, KeyError, TypeError, AssertionError):
            self.violation(f"X-Ray error cause is not the documented document: {raw[:200]!r}")

    def cut(self, request: Request) -> None:
        request_id = request.path[len(PREFIX) :].split("/")[2]
        with self._done:
            self._answered.add(request_id)
            self.outcomes[request_id] = Outcome(request_id, "cut", request)
            self._done.notify_all()

    def next_connection(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: StrictRuntimeApi


class _ProtocolError(Exception):
    pass


class _Cut(Exception):
    pass


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        api = self.server.api
        connection = api.next_connection()
        streamed_before = False
        while True:
            try:
                request = self._read_request(connection)
            except _ProtocolError as exc:
                api.violation(str(exc))
                self._send(400, {"Connection": "close"}, b"")
                return
            except _Cut as cut:
                api.cut(cut.args[0])
                return
            except (ConnectionError, TimeoutError, OSError):
                return
            if request is None:
                return
            if streamed_before:
                api.violation("the connection of a streamed response carried another request")
            status, headers, body = api.handle(request)
            try:
                self._send(status, headers, body)
            except OSError:
                return
            streamed_before = streamed_before or request.streamed

    def _line(self) -> bytes:
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionError("closed")
        if not line.endswith(b"\r\n"):
            raise _ProtocolError(f"a line not ended by CRLF: {line[:80]!r}")
        return line[:-2]

    def _read_request(self, connection: int) -> Request | None:
        try:
            start = self._line()
        except ConnectionError:
            return None
        parts = start.decode("latin-1").split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1":
            raise _ProtocolError(f"bad request line {start[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip():
                raise _ProtocolError(f"bad header line {line[:80]!r}")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        request = Request(parts[0], parts[1], headers, b"", connection=connection, at=time.monotonic())
        if headers.get("transfer-encoding", "").lower() == "chunked":
            if "content-length" in headers:
                raise _ProtocolError("both Content-Length and Transfer-Encoding: chunked")
            self._read_chunked(request)
        else:
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    raise _ProtocolError(f"bad Content-Length {length!r}")
                request.body = self.rfile.read(int(length))
                request.chunks = [request.body]
        return request

    def _read_chunked(self, request: Request) -> None:
        while True:
            size_line = self._line().decode("latin-1")
            size_text = size_line.split(";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _ProtocolError(f"bad chunk size {size_line!r}") from None
            if size == 0:
                break
            data = self.rfile.read(size)
            if len(data) != size:
                raise ConnectionError("closed mid-chunk")
            if self.rfile.read(2) != b"\r\n":
                raise _ProtocolError("a chunk not followed by CRLF")
            request.chunks.append(data)
            if self.server.api.cut_streams and request.streamed:
                raise _Cut(request)
        declared = {t.strip().lower() for t in request.headers.get("trailer", "").split(",") if t.strip()}
        while True:
            line = self._line()
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _ProtocolError(f"bad trailer line {line[:80]!r}")
            if name.strip().lower() not in declared:
                raise _ProtocolError(f"trailer {name.strip()!r} was not declared in the Trailer header")
            request.trailers[name.strip().lower()] = value.strip()
        request.body = b"".join(request.chunks)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 503: "Unavailable"}
        lines = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}"]
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            lines.append(f"{name}: {value}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()
