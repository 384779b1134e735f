"""The streaming runtime loop against a strict Lambda Runtime API on loopback
(tests/helpers/runtime_api.py): what Lambda, and so API Gateway with ResponseTransferMode
STREAM, receives from the function, and that the process survives whatever a handler does."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aigw import clock, lambda_runtime
from aigw.streaming import StreamingResponse, event_stream
from aigw_local import template as tpl
from tests.helpers.apigw import _handler, build_event
from tests.helpers.runtime_api import Outcome, StrictRuntimeApi

WRAPPER = tpl.ROOT / "layers/core/aigw/bin/streaming-runtime"


@pytest.fixture
def runtime_api() -> Iterator[StrictRuntimeApi]:
    api = StrictRuntimeApi().start()
    yield api
    api.stop()
    assert api.violations == []


def _split(chunks: list[bytes]) -> tuple[dict[str, Any], bytes]:
    raw = b"".join(chunks)
    prelude, _, body = raw.partition(lambda_runtime.DELIMITER)
    return json.loads(prelude), body


def _serve(
    api: StrictRuntimeApi, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]
) -> Outcome:
    request_id = api.invoke(event)
    lambda_runtime.Runtime(api.address, handler).run_once()
    return api.wait(request_id, timeout=5)


def _run(
    api: StrictRuntimeApi, body: dict[str, Any], key: str | None, path: str = "/v1/chat/completions"
) -> Outcome:
    event, route = build_event("POST", path, body=body, key=key)
    return _serve(api, _handler(route.function.logical_id), event)


def test_a_streamed_answer_goes_out_piece_by_piece_in_the_api_gateway_format(
    runtime_api: StrictRuntimeApi, key: str
) -> None:
    body = {
        "model": "mock/echo",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four"}],
    }
    outcome = _run(runtime_api, body, key)
    request = outcome.request
    assert outcome.kind == "response"
    assert request.path == "/2018-06-01/runtime/invocation/inv-1/response"
    assert request.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert request.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    assert request.headers["transfer-encoding"] == "chunked"
    # Declared up front, so that a failure after the first bytes can still be reported.
    assert (
        request.headers["trailer"] == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    assert request.trailers == {}
    prelude, payload = _split(request.chunks)
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["Content-Type"] == "text/event-stream"
    assert payload.decode().endswith("data: [DONE]\n\n")
    assert len(request.chunks) > 5  # the prelude, then one HTTP chunk per event, not one buffered body
    assert b"".join(request.chunks[1:]) == payload


def test_a_plain_answer_is_one_piece_after_the_prelude(runtime_api: StrictRuntimeApi, key: str) -> None:
    outcome = _run(runtime_api, {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}, key)
    prelude, payload = _split(outcome.request.chunks)
    assert prelude["statusCode"] == 200
    assert len(outcome.request.chunks) == 2
    assert json.loads(payload)["choices"][0]["message"]["content"] == "Echo: hi"


def test_errors_keep_their_status_in_the_prelude(runtime_api: StrictRuntimeApi) -> None:
    outcome = _run(runtime_api, {"model": "mock/echo", "stream": True, "messages": []}, None)
    prelude, payload = _split(outcome.request.chunks)
    assert prelude["statusCode"] == 401
    assert prelude["headers"]["WWW-Authenticate"] == 'Bearer realm="aigw"'
    assert json.loads(payload)["error"]["code"] == "missing_api_key"


def test_a_crashing_handler_reports_an_invocation_error_with_its_xray_cause(
    runtime_api: StrictRuntimeApi,
) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("kaput")

    outcome = _serve(runtime_api, broken, {"anything": 1})
    assert outcome.kind == "error"
    assert outcome.request.path == "/2018-06-01/runtime/invocation/inv-1/error"
    assert outcome.request.headers["lambda-runtime-function-error-type"] == "Unhandled"
    error = outcome.request.json()
    assert (error["errorType"], error["errorMessage"]) == ("RuntimeError", "kaput")
    assert any("broken" in line for line in error["stackTrace"])
    cause = json.loads(outcome.request.headers["lambda-runtime-function-xray-error-cause"])
    (exception,) = cause["exceptions"]
    assert (exception["type"], exception["message"]) == ("RuntimeError", "kaput")
    assert exception["stack"][-1]["label"] == "broken"
    assert __file__ in cause["paths"]


def test_a_handler_answer_that_is_not_an_answer_is_an_invocation_error(runtime_api: StrictRuntimeApi) -> None:
    outcome = _serve(runtime_api, lambda event, context: {"no": "status"}, {})
    assert outcome.kind == "error"
    assert outcome.request.json()["errorType"] == "TypeError"


def _failing_stream(closed: list[str]) -> Callable[[dict[str, Any], Any], StreamingResponse]:
    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            yield b'data: {"n": 1}\n\n'
            yield b'data: {"n": 2}\n\n'
            raise ValueError("a bug after two events")

        return event_stream(body(), on_close=lambda: closed.append("closed"))

    return handler


def test_a_failure_mid_stream_ends_the_answer_with_an_error_event_and_the_error_trailers(
    runtime_api: StrictRuntimeApi,
) -> None:
    closed: list[str] = []
    event, _ = build_event("POST", "/v1/chat/completions", body={})
    outcome = _serve(runtime_api, _failing_stream(closed), event)
    request = outcome.request
    assert outcome.kind == "response"
    prelude, payload = _split(request.chunks)
    assert prelude["statusCode"] == 200
    events = payload.decode().split("\n\n")
    assert events[:2] == ['data: {"n": 1}', 'data: {"n": 2}']
    # The last event is an error as OpenAI SDKs read one mid-stream.
    error = json.loads(events[2].removeprefix("data: "))["error"]
    assert error["type"] == "api_error"
    assert error["code"] == "internal_error"
    assert "a bug" not in error["message"]  # the caller learns nothing of the internals
    assert request.trailers["lambda-runtime-function-error-type"] == "Function.ValueError"
    assert outcome.error_trailer is not None
    assert outcome.error_trailer["errorMessage"] == "a bug after two events"
    assert closed == ["closed"]  # the stream was closed, which is what settles a meter


def test_a_failure_mid_stream_on_the_messages_route_ends_with_an_anthropic_error_event(
    runtime_api: StrictRuntimeApi,
) -> None:
    event, _ = build_event("POST", "/v1/messages", body={})
    outcome = _serve(runtime_api, _failing_stream([]), event)
    _, payload = _split(outcome.request.chunks)
    last = payload.decode().split("\n\n")[2]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error"


def test_after_a_failure_mid_stream_the_next_invocation_is_served(runtime_api: StrictRuntimeApi) -> None:
    event, _ = build_event("POST", "/v1/chat/completions", body={})
    runtime = lambda_runtime.Runtime(runtime_api.address, _failing_stream([]))
    first = runtime_api.invoke(event)
    runtime.run_once()
    second = runtime_api.invoke(event)
    runtime.run_once()
    assert runtime_api.wait(first).error_trailer is not None
    assert runtime_api.wait(second).error_trailer is not None


def test_a_caller_gone_mid_stream_closes_the_stream_and_the_loop_goes_on(
    runtime_api: StrictRuntimeApi,
) -> None:
    closed: list[str] = []

    def slow(event: dict[str, Any], context: Any) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            for n in range(50):
                time.sleep(0.005)
                yield f"data: {n}\n\n".encode()

        return event_stream(body(), on_close=lambda: closed.append("closed"))

    runtime_api.cut_streams = True
    outcome = _serve(runtime_api, slow, {"path": "/v1/chat/completions"})
    assert outcome.kind == "cut"
    assert closed == ["closed"]
    runtime_api.cut_streams = False
    assert _serve(runtime_api, slow, {}).kind == "response"


def _records_for_day(team_id: str, day: str) -> list[Any]:
    from aigw.usage.records import records_for_day

    return list(records_for_day(team_id, day))


def test_the_answer_is_posted_before_the_call_is_settled_and_the_settle_still_happens(
    runtime_api: StrictRuntimeApi, key: str
) -> None:
    day = clock.iso(clock.now())[:10]
    records_when_answered: list[int] = []
    runtime_api.on_outcome = lambda _: records_when_answered.append(len(_records_for_day("acme", day)))
    outcome = _run(runtime_api, {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}, key)
    assert json.loads(_split(outcome.request.chunks)[1])["choices"][0]["message"]["content"] == "Echo: hi"
    assert records_when_answered == [0]  # the caller had its answer before the usage was written
    (record,) = _records_for_day("acme", day)  # ... which happened before the next /next
    assert record.status == 200
    assert record.prompt_tokens > 0


def test_restore_hooks_give_a_restored_environment_its_own_random_state() -> None:
    random.seed(7)
    from_snapshot = random.random()
    random.seed(7)
    lambda_runtime._fresh_after_restore()
    assert random.random() != from_snapshot


# ---- the process, started as Lambda starts it ------------------------------------------------


HANDLERS = textwrap.dedent(
    """
    import os, random
    from aigw import lambda_runtime
    from aigw.streaming import event_stream

    MARKS = os.environ["TEST_MARKS"]

    def mark(text):
        with open(MARKS, "a") as f:
            f.write(text + "\\n")

    lambda_runtime.before_snapshot(lambda: mark("before snapshot"))
    lambda_runtime.after_restore(lambda: mark("after restore"))

    def handler(event, context):
        mode = event.get("mode")
        print("handling", mode)
        if mode == "crash":
            raise KeyError("no such thing")
        if mode == "crash mid-stream":
            def body():
                yield b'data: {"n": 1}\\n\\n'
                yield b'data: {"n": 2}\\n\\n'
                raise RuntimeError("boom after two events")
            return event_stream(body())
        return {"statusCode": 200, "headers": {}, "body": str(os.getpid())}
    """
)


class Process:
    """The wrapper started as Lambda starts it: ``wrapper <interpreter> <bootstrap script>``."""

    def __init__(self, api: StrictRuntimeApi, task_root: Path, env: dict[str, str]) -> None:
        read_fd, write_fd = os.pipe()
        self.frames: list[tuple[int, str]] = []
        self.stdout: list[str] = []
        self.process = subprocess.Popen(
            [str(WRAPPER), sys.executable, "/var/runtime/bootstrap.py"],
            env={
                **os.environ,
                "AWS_LAMBDA_RUNTIME_API": api.address,
                "_HANDLER": "app.handler",
                "LAMBDA_TASK_ROOT": str(task_root),
                "_LAMBDA_TELEMETRY_LOG_FD": str(write_fd),
                "PYTHONUNBUFFERED": "",
                **env,
            },
            pass_fds=(write_fd,),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.close(write_fd)
        threading.Thread(target=self._read_frames, args=(read_fd,), daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_frames(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            while header := pipe.read(16):
                length = int.from_bytes(header[4:8], "big")
                self.frames.append((int.from_bytes(header[:4], "big"), pipe.read(length).decode()))

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLERS, encoding="utf-8")
    return tmp_path


def _start(api: StrictRuntimeApi, task_root: Path, **env: str) -> Iterator[Process]:
    process = Process(api, task_root, {"TEST_MARKS": str(task_root / "marks.txt"), **env})
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def process(runtime_api: StrictRuntimeApi, task_root: Path) -> Iterator[Process]:
    yield from _start(runtime_api, task_root)


def test_a_crash_mid_stream_is_reported_and_the_same_process_serves_the_next_invocation(
    runtime_api: StrictRuntimeApi, process: Process
) -> None:
    crash = runtime_api.wait(runtime_api.invoke({"mode": "crash mid-stream", "path": "/v1/chat/completions"}))
    prelude, payload = _split(crash.request.chunks)
    assert prelude["statusCode"] == 200
    assert payload.decode().count("data: ") == 3  # two events, then the error event
    assert crash.request.trailers["lambda-runtime-function-error-type"] == "Function.RuntimeError"
    assert crash.error_trailer is not None
    assert crash.error_trailer["errorMessage"] == "boom after two events"
    after = runtime_api.wait(runtime_api.invoke({"mode": "pid"}))
    assert _split(after.request.chunks)[1].decode() == str(process.process.pid)
    assert process.process.poll() is None


def test_a_crashing_handler_is_reported_and_the_same_process_serves_the_next_invocation(
    runtime_api: StrictRuntimeApi, process: Process
) -> None:
    crash = runtime_api.wait(runtime_api.invoke({"mode": "crash"}))
    assert crash.kind == "error"
    assert crash.request.json()["errorType"] == "KeyError"
    assert "lambda-runtime-function-xray-error-cause" in crash.request.headers
    after = runtime_api.wait(runtime_api.invoke({"mode": "pid"}))
    assert _split(after.request.chunks)[1].decode() == str(process.process.pid)


def test_each_error_is_logged_as_one_event_and_prints_are_not_buffered(
    runtime_api: StrictRuntimeApi, process: Process
) -> None:
    runtime_api.wait(runtime_api.invoke({"mode": "crash mid-stream", "path": "/v1/chat/completions"}))
    runtime_api.wait_for_next(2)  # idle again: nothing more is written until the next invocation
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (process.frames and process.stdout):
        time.sleep(0.02)
    (frame_type, record), *_ = [f for f in process.frames if "boom" in f[1]]
    assert frame_type == 0xA55A0017  # an ERROR text record
    # One record: the message, the request id and the whole traceback, newlines included.
    assert "\tinv-1\t" in record
    assert "Traceback" in record
    assert record.rstrip().endswith("RuntimeError: boom after two events")
    assert "handling crash mid-stream\n" in process.stdout


def test_without_snapstart_the_loop_never_asks_for_a_restore(
    runtime_api: StrictRuntimeApi, process: Process, task_root: Path
) -> None:
    runtime_api.wait(runtime_api.invoke({"mode": "pid"}))
    assert runtime_api.restore_requests == 0
    assert not (task_root / "marks.txt").exists()


def test_under_snapstart_the_loop_waits_for_the_restore_and_runs_the_hooks_around_it(
    task_root: Path,
) -> None:
    api = StrictRuntimeApi(snap_start=True).start()
    marks = task_root / "marks.txt"
    try:
        for process in _start(api, task_root, AWS_LAMBDA_INITIALIZATION_TYPE="snap-start"):
            request_id = api.invoke({"mode": "pid"})
            deadline = time.monotonic() + 30
            while api.restore_requests == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            # Snapshot time: the hooks before it ran, the process waits on /restore/next.
            assert marks.read_text().splitlines() == ["before snapshot"]
            assert request_id not in api.outcomes
            api.restore.set()
            outcome = api.wait(request_id)
            assert _split(outcome.request.chunks)[1].decode() == str(process.process.pid)
            assert marks.read_text().splitlines() == ["before snapshot", "after restore"]
    finally:
        api.stop()
    assert api.violations == []
    assert api.restore_requests == 1


def test_a_handler_that_cannot_be_loaded_is_an_init_error(
    runtime_api: StrictRuntimeApi, tmp_path: Path
) -> None:
    for process in _start(runtime_api, tmp_path):
        assert process.process.wait(timeout=30) == 1
    (report,) = runtime_api.init_errors
    assert report.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    assert "app" in report.json()["errorMessage"]


def test_the_runtime_starts_as_lambda_starts_it_with_a_real_handler(runtime_api: StrictRuntimeApi) -> None:
    """The wrapper with Lambda's arguments, loading ``_HANDLER`` from the invoke function's
    code, answers a first invocation (one refused before any table access)."""
    event, _ = build_event("GET", "/v1/models")
    for _ in _start(runtime_api, tpl.ROOT / "functions/invoke", AWS_LAMBDA_FUNCTION_NAME="InvokeFunction"):
        outcome = runtime_api.wait(runtime_api.invoke(event))
    prelude, payload = _split(outcome.request.chunks)
    assert prelude["statusCode"] == 401
    assert json.loads(payload)["error"]["code"] == "missing_api_key"


def test_the_wrapper_runs_the_interpreter_lambda_passes(tmp_path: Path) -> None:
    """``exec "$1"``: whatever interpreter Lambda names (here a shim that says how it was run),
    unbuffered, with the layer the wrapper sits in and the function's code on the path."""
    shim = tmp_path / "python3.13"
    shim.write_text('#!/bin/sh\necho "$PYTHONPATH|$PYTHONUNBUFFERED|$*"\n')
    shim.chmod(0o755)
    done = subprocess.run(
        [str(WRAPPER), str(shim), "/var/runtime/bootstrap.py"],
        env={**os.environ, "LAMBDA_TASK_ROOT": "/var/task", "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    path, unbuffered, args = done.stdout.strip().split("|")
    assert path == f"{tpl.ROOT / 'layers/core'}:/var/task"
    assert unbuffered == "1"
    assert args == "-u -m aigw.lambda_runtime"


def test_streaming_functions_are_wired_for_streaming_in_the_template() -> None:
    template = tpl.load()
    streaming = [s for s in tpl.functions(template) if "AWS_LAMBDA_EXEC_WRAPPER" in s.environment]
    assert {s.logical_id for s in streaming} >= {"InvokeFunction", "MessagesFunction", "PromptApisFunction"}
    for spec in streaming:
        events = template["Resources"][spec.logical_id]["Properties"]["Events"].values()
        assert all(e["Properties"]["ResponseTransferMode"] == "RESPONSE_STREAM" for e in events)
        wrapper = spec.environment["AWS_LAMBDA_EXEC_WRAPPER"]
        # The layer is mounted at /opt with its content under python/.
        in_repo = tpl.ROOT / "layers/core" / wrapper.removeprefix("/opt/python/")
        assert in_repo == WRAPPER
