"""A threaded HTTP server on loopback that routes like API Gateway and invokes handlers."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from aigw import request_context
from aigw.streaming import StreamingResponse
from aigw_local import apigw
from aigw_local.template import FunctionSpec, Route

# API Gateway's own payload limit; the handlers enforce the (smaller) gateway limit themselves.
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
# A worker hands its budget leases back after this long without a call (decision 19): unlike a
# frozen Lambda container it can run while idle, so locally the counters catch up quickly.
LEASE_IDLE_SECONDS = 1.0

Handler = Callable[[dict[str, Any], Any], Any]
Answer = apigw.HttpResponse | StreamingResponse
# A local service the runner serves beside the template's routes, under a path prefix of its own
# (the Stripe simulator, the EventBridge stand-in), outside the one-invocation-at-a-time lock.
Mount = Callable[[apigw.HttpRequest], apigw.HttpResponse]


def load_handler(spec: FunctionSpec) -> Handler:
    module_file, _, attr = spec.handler.rpartition(".")
    path = spec.code_uri / f"{module_file.replace('.', '/')}.py"
    module_name = f"aigw_fn_{spec.logical_id}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise RuntimeError(f"cannot load handler {spec.handler} from {path}")
    module: ModuleType = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    handler: Handler = getattr(module, attr)
    return handler


class Gateway:
    """Routes requests to handlers like API Gateway in front of Lambda.

    A Lambda container serves one request at a time, and handler code may rely on it:
    Powertools keeps the current event in class attributes shared by every resolver of the
    process (``BaseRouter.current_event``), so two requests in flight at once would read each
    other's body and request id. The runner therefore invokes one handler at a time (a stream's
    body is sent after its handler returned, outside the lock). A request waiting on a slow
    vendor holds the others back in this process; ``--workers N`` (:func:`fork_workers`) runs N
    such processes, as Lambda runs N containers.
    """

    def __init__(self, routes: list[Route], log: Callable[[str], None] | None = None) -> None:
        self.routes = routes
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._invoke = threading.Lock()  # one invocation at a time, see the class docstring
        self._log = log
        self._after_pool: ThreadPoolExecutor | None = None
        self._after_pid = 0
        self._keeper_pid = 0
        self._stopping = threading.Event()

    @property
    def invocation_lock(self) -> threading.Lock:
        """Held while a handler runs; stream event sources (aigw_local.streams) take it too."""
        return self._invoke

    def handler_for(self, spec: FunctionSpec) -> Handler:
        with self._lock:
            if spec.logical_id not in self._handlers:
                self._handlers[spec.logical_id] = load_handler(spec)
            return self._handlers[spec.logical_id]

    def preload(self) -> None:
        for route in self.routes:
            self.handler_for(route.function)

    def serve(self, request: apigw.HttpRequest, send: Callable[[Answer], None]) -> Future[None] | None:
        """Answer one request through ``send``; what its handler deferred until after the
        answer (:func:`aigw.request_context.defer`, a call's settle) then runs on this
        process's after-answer thread, whose future is returned.

        On AWS the container that answered finishes that work before it takes another event,
        while API Gateway hands the caller's next request to another container. A keep-alive
        connection here stays with one process, so running the work on the connection's thread
        would make the caller's next request wait for it, which no caller of the deployed
        gateway does; the after-answer thread keeps it off the caller's path the same way."""
        started = time.monotonic()
        self._keep_leases()
        self._invoke.acquire()
        locked = True
        deferred = request_context.open_deferred()
        try:
            try:
                response = self._dispatch(request)
            finally:
                request_context.close_deferred()
            if self._log:
                elapsed = (time.monotonic() - started) * 1000
                kind = " streaming" if isinstance(response, StreamingResponse) else ""
                self._log(f"{request.method} {request.path} -> {response.status}{kind} ({elapsed:.0f} ms)")
            if isinstance(response, StreamingResponse):
                self._invoke.release()  # a stream's body is sent outside the lock
                locked = False
            send(response)
        finally:
            if locked:
                self._invoke.release()
            future = self._after_answer().submit(request_context.run_deferred, deferred) if deferred else None
        return future

    def dispatch(self, request: apigw.HttpRequest) -> Answer:
        """:meth:`serve` returning the answer instead of sending it, once deferred work has run."""
        answers: list[Answer] = []
        future = self.serve(request, answers.append)
        if future is not None:
            future.result()
        return answers[0]

    def _after_answer(self) -> ThreadPoolExecutor:
        # One per process, made in the process that uses it: a forked worker inherits its
        # parent's executor object but not its thread.
        with self._lock:
            if self._after_pid != os.getpid() or self._after_pool is None:
                self._after_pool = ThreadPoolExecutor(1, thread_name_prefix="aigw-after-answer")
                self._after_pid = os.getpid()
            return self._after_pool

    def _keep_leases(self) -> None:
        """Start (once per process) the thread that hands idle budget leases back."""
        with self._lock:
            if self._keeper_pid == os.getpid():
                return
            self._keeper_pid = os.getpid()
        threading.Thread(target=self._return_idle_leases, name="aigw-leases", daemon=True).start()

    def _return_idle_leases(self) -> None:
        from aigw.billing import held_leases

        while not self._stopping.wait(LEASE_IDLE_SECONDS / 4):
            try:
                held_leases.return_idle(LEASE_IDLE_SECONDS)
            except Exception as exc:  # pragma: no cover - logged, retried on the next tick
                if self._log:
                    self._log(f"returning idle leases failed: {exc}")

    def drain(self) -> None:
        """Wait for the work deferred after answers, then hand every budget lease back: at
        shutdown no call is left unsettled and the team's counters equal its records."""
        with self._lock:
            pool = self._after_pool if self._after_pid == os.getpid() else None
            self._after_pool = None
        if pool is not None:
            pool.shutdown(wait=True)
        self._stopping.set()
        from aigw.billing import held_leases

        held_leases.return_all()

    def _dispatch(self, request: apigw.HttpRequest) -> Answer:
        path_matched = False
        for route in self.routes:
            params = route.match(request.method, request.path)
            if params is None:
                path_matched = path_matched or route.pattern.fullmatch(request.path) is not None
                continue
            event = apigw.build_event(request, route, params)
            context = apigw.LambdaContext(route.function.logical_id, route.function.timeout)
            handler = self.handler_for(route.function)
            try:
                result = handler(event, context)
            except Exception as exc:
                if self._log:
                    self._log(f"handler {route.function.logical_id} raised {type(exc).__name__}: {exc}")
                return apigw.malformed()
            if isinstance(result, StreamingResponse):
                return result  # API Gateway with ResponseTransferMode STREAM
            return apigw.parse_result(result)
        status = 405 if path_matched else 404
        detail = "Method not allowed" if path_matched else "No such route"
        body = {
            "type": "urn:aigw:problem:not_found",
            "title": detail,
            "status": status,
            "detail": detail,
            "code": "method_not_allowed" if path_matched else "not_found",
        }
        return apigw.HttpResponse(
            status, [("Content-Type", "application/problem+json")], json.dumps(body).encode()
        )


class _SharedSocketServer(ThreadingHTTPServer):
    """A server whose listening socket several worker processes may share (see ``fork_workers``).

    The listener is non-blocking so a process that lost the race for a connection goes back to
    its loop (and notices a shutdown) instead of blocking in accept(); connections themselves
    stay blocking, as the handlers expect."""

    # socketserver's default backlog is 5: a burst of callers (64 SDK clients connecting at once)
    # would see connections reset before any worker could accept them. API Gateway queues them.
    request_queue_size = 128

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        connection.setblocking(True)
        return connection, address


def fork_workers(
    server: ThreadingHTTPServer,
    count: int,
    on_start: Callable[[], None],
    on_stop: Callable[[], None] = lambda: None,
) -> list[int]:
    """Fork ``count`` more processes serving the same socket: each is one warm "container" that
    runs one invocation at a time, as Lambda scales out. Returns the children's pids; a child
    never returns from here. A child asked to stop finishes serving, then runs ``on_stop``
    (which waits for deferred settles) before it exits."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, checked by the runner tests

            def stop(*_: object) -> None:
                threading.Thread(target=server.shutdown, daemon=True).start()

            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)
            try:
                on_start()
                server.serve_forever(poll_interval=0.2)
                on_stop()
            finally:
                os._exit(0)
        pids.append(pid)
    return pids


def stop_workers(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def make_server(
    gateway: Gateway, host: str, port: int, mounts: dict[str, Mount] | None = None
) -> ThreadingHTTPServer:
    """The runner's HTTP server, bound to ``host:port`` (OSError if that is taken). ``mounts``
    may be filled in later, before serving."""
    mounted = mounts if mounts is not None else {}

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle and the peer's
        # delayed ACK add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True
        server_version = "aigw-local"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the gateway logs one line per request itself

        def _read_body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                total = 0
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    total += size
                    if total > API_GATEWAY_MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length > API_GATEWAY_MAX_BODY:
                return None
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            try:
                body = self._read_body()
            except ValueError:
                self._send(
                    apigw.HttpResponse(
                        400, [("Content-Type", "application/json")], b'{"message": "Bad request"}'
                    )
                )
                return
            if body is None:
                self.close_connection = True
                self._send(
                    apigw.HttpResponse(
                        413, [("Content-Type", "application/json")], b'{"message": "Request Too Long"}'
                    )
                )
                return
            path, _, query = self.path.partition("?")
            request = apigw.HttpRequest(
                method=self.command,
                path=_unquote_path(path),
                query=query,
                headers=list(self.headers.items()),
                body=body,
                client_ip=self.client_address[0],
                host=self.headers.get("Host", f"{host}:{port}"),
            )
            for prefix, service in mounted.items():
                if request.path == prefix or request.path.startswith(prefix + "/"):
                    self._send(service(request))
                    return
            gateway.serve(request, self._send)

        def _send(self, response: Answer) -> None:
            if isinstance(response, StreamingResponse):
                self._stream(response)
                return
            self.send_response(response.status)
            names = set()
            for name, value in response.headers:
                if name.lower() in ("content-length", "connection", "transfer-encoding"):
                    continue
                names.add(name.lower())
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _stream(self, response: StreamingResponse) -> None:
            """Chunked transfer, each piece written and flushed as the handler produces it. A
            client that goes away shows up as a failed write; closing the stream settles it."""
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                for piece in response.body:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                response.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

        def __getattr__(self, name: str) -> Callable[[], None]:
            # Any other method (TRACE, PROPFIND...) is routed too, and so answered 404/405 as
            # JSON like API Gateway does, instead of http.server's HTML 501.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

    server = _SharedSocketServer((host, port), RequestHandler)
    server.daemon_threads = True
    return server


def _unquote_path(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path) or "/"
