"""Loopback HTTP servers that play a vendor's part; tests script their answers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[Recorded], Scripted]


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records every request in ``requests``;
    subclasses write each answer in :meth:`answer`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                fake.requests.append(recorded)
                fake.answer(self, recorded)

            do_GET = do_POST = _serve

        return Handler


class FakeUpstream(RecordingServer):
    """Plain JSON answers; ``respond`` decides each one."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        super().__init__()

    def answer(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        scripted = self.respond(request)
        if scripted.delay:
            time.sleep(scripted.delay)
        payload = scripted.body if isinstance(scripted.body, bytes) else json.dumps(scripted.body).encode()
        try:
            handler.send_response(scripted.status)
            handler.send_header("Content-Type", "application/json")
            for name, value in scripted.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up waiting, as a timeout test intends


def openai_completion(
    request: Recorded, *, content: str = "Hi from fake OpenAI", cached: int = 0
) -> Scripted:
    """A chat.completion as OpenAI documents it, echoing the requested upstream model."""
    body = request.json()
    return Scripted(
        body={
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            "system_fingerprint": "fp_fake",
        }
    )


def openai_error(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> Scripted:
    return Scripted(
        status=status,
        body={"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}},
        headers=headers or {},
    )


@contextlib.contextmanager
def openai_upstream(
    respond: Responder, monkeypatch: pytest.MonkeyPatch, *, timeout_seconds: int | None = None
) -> Iterator[FakeUpstream]:
    """A fake OpenAI server the gateway's OpenAI adapter is pointed at, for one test."""
    from tests.conftest import reset_core

    server = FakeUpstream(respond).start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-test")
    if timeout_seconds is not None:
        monkeypatch.setenv("UPSTREAM_TIMEOUT_SECONDS", str(timeout_seconds))
    reset_core()
    try:
        yield server
    finally:
        server.stop()
