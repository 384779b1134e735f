"""The streaming runtime loop against a fake Lambda Runtime API on loopback: what Lambda (and
so API Gateway with ResponseTransferMode STREAM) receives from the function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aigw import clock, lambda_runtime
from aigw.usage import records as usage_records
from aigw_local import template as tpl
from tests.helpers.apigw import _handler, build_event


@dataclass
class RuntimeApi:
    """Hands out one event, records what the function posts back, chunk by chunk."""

    event: dict[str, Any]
    posts: list[tuple[str, dict[str, str], list[bytes]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    on_post: Callable[[], None] | None = None  # runs as each post arrives, before it is answered

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    api = RuntimeApi(event={})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(api.event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "inv-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:1:function:f")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            chunks: list[bytes] = []
            if self.headers.get("Transfer-Encoding") == "chunked":
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            else:
                chunks.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if api.on_post is not None:
                api.on_post()
            api.posts.append((self.path, dict(self.headers.items()), chunks))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    api.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def _split(chunks: list[bytes]) -> tuple[dict[str, Any], bytes]:
    raw = b"".join(chunks)
    prelude, _, body = raw.partition(lambda_runtime.DELIMITER)
    return json.loads(prelude), body


def _run(api: RuntimeApi, body: dict[str, Any], key: str | None) -> tuple[str, dict[str, str], list[bytes]]:
    event, route = build_event("POST", "/v1/chat/completions", body=body, key=key)
    api.event = event
    lambda_runtime.Runtime(api.address, _handler(route.function.logical_id)).run_once()
    (post,) = api.posts
    return post


def test_a_streamed_answer_goes_out_piece_by_piece_in_the_api_gateway_format(
    runtime_api: RuntimeApi, key: str
) -> None:
    body = {
        "model": "mock/echo",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four"}],
    }
    path, headers, chunks = _run(runtime_api, body, key)
    assert path == "/2018-06-01/runtime/invocation/inv-1/response"
    assert headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert headers["Content-Type"] == "application/vnd.awslambda.http-integration-response"
    assert headers["Transfer-Encoding"] == "chunked"
    prelude, payload = _split(chunks)
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["Content-Type"] == "text/event-stream"
    assert payload.decode().endswith("data: [DONE]\n\n")
    assert len(chunks) > 5  # the prelude, then one HTTP chunk per event, not one buffered body
    assert b"".join(chunks[1:]) == payload


def test_a_plain_answer_is_one_piece_after_the_prelude(runtime_api: RuntimeApi, key: str) -> None:
    _, _headers, chunks = _run(
        runtime_api, {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}, key
    )
    prelude, payload = _split(chunks)
    assert prelude["statusCode"] == 200
    assert json.loads(payload)["choices"][0]["message"]["content"] == "Echo: hi"


def test_errors_keep_their_status_in_the_prelude(runtime_api: RuntimeApi) -> None:
    _, _, chunks = _run(runtime_api, {"model": "mock/echo", "stream": True, "messages": []}, None)
    prelude, payload = _split(chunks)
    assert prelude["statusCode"] == 401
    assert prelude["headers"]["WWW-Authenticate"] == 'Bearer realm="aigw"'
    assert json.loads(payload)["error"]["code"] == "missing_api_key"


def test_a_crashing_handler_reports_an_invocation_error(runtime_api: RuntimeApi) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("kaput")

    runtime_api.event = {"anything": 1}
    lambda_runtime.Runtime(runtime_api.address, broken).run_once()
    ((path, _headers, chunks),) = runtime_api.posts
    assert path == "/2018-06-01/runtime/invocation/inv-1/error"
    assert json.loads(b"".join(chunks))["errorMessage"] == "kaput"


def test_streaming_functions_are_wired_for_streaming_in_the_template() -> None:
    template = tpl.load()
    for route in tpl.routes(template):
        if route.function.logical_id not in ("InvokeFunction", "MessagesFunction", "PromptApisFunction"):
            continue
        events = template["Resources"][route.function.logical_id]["Properties"]["Events"].values()
        assert all(e["Properties"]["ResponseTransferMode"] == "RESPONSE_STREAM" for e in events)
        wrapper = route.function.environment["AWS_LAMBDA_EXEC_WRAPPER"]
        # The layer is mounted at /opt with its content under python/.
        in_repo = tpl.ROOT / "layers/core" / wrapper.removeprefix("/opt/python/")
        assert in_repo.is_file()
        assert os.access(in_repo, os.X_OK)


def test_the_runtime_starts_as_lambda_starts_it(runtime_api: RuntimeApi) -> None:
    """``python -m aigw.lambda_runtime`` with Lambda's environment: loads ``_HANDLER`` from the
    task root and answers the first invocation (here one refused before any table access)."""
    event, _ = build_event("GET", "/v1/models")
    runtime_api.event = event
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(tpl.ROOT / "functions/invoke"),
        "AWS_LAMBDA_FUNCTION_NAME": "InvokeFunction",
    }
    process = subprocess.Popen([sys.executable, "-m", "aigw.lambda_runtime"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not runtime_api.posts and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=10)
    assert runtime_api.posts, stderr.decode()
    path, _, chunks = runtime_api.posts[0]
    assert path.endswith("/invocation/inv-1/response")
    prelude, payload = _split(chunks)
    assert prelude["statusCode"] == 401
    assert json.loads(payload)["error"]["code"] == "missing_api_key"


def test_the_answer_is_posted_before_the_call_is_settled_and_the_settle_still_happens(
    runtime_api: RuntimeApi, key: str
) -> None:
    day = clock.iso(clock.now())[:10]
    records_when_answered: list[int] = []
    runtime_api.on_post = lambda: records_when_answered.append(
        len(usage_records.records_for_day("acme", day))
    )
    _, _, chunks = _run(
        runtime_api, {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}, key
    )
    assert json.loads(_split(chunks)[1])["choices"][0]["message"]["content"] == "Echo: hi"
    assert records_when_answered == [0]  # the caller had its answer before the usage was written
    (record,) = usage_records.records_for_day("acme", day)  # ... which happened before the next /next
    assert record.status == 200
    assert record.prompt_tokens > 0
