"""Which AWS API calls each Lambda function's code makes, recorded while the tests drive its
handler (a pytest plugin, loaded by tests/conftest.py), so that the template can grant each
function exactly those (tests/unit/test_template_permissions.py).

A call counts for a function when it happens while that function's handler runs, or while the
stream the handler returned is read or closed (a streamed answer's meter settles then): what
that function's own Lambda process would do. Calls the tests make themselves (set-up,
assertions) do not count. Handlers are the ones loaded through
``aigw_local.server.load_handler`` (every unit and integration test that calls a handler does),
wrapped when this plugin loads.

Calls are named ``service:Operation``, with the detail IAM needs for DynamoDB: the kinds of
items in a transaction (``dynamodb:TransactWriteItems/Put``), and queries on an index
(``dynamodb:Query/index``).

The calls are checked against ``tests/aws_calls.json`` at the end of every run of the whole
unit and integration suites (``make test``): a function that now makes a call it did not, or
no longer makes one, fails the run with the difference. ``make aws-calls`` records them again
into that file; the template test then says which grants to change.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest

import aigw_local.server
from aigw.streaming import StreamingResponse
from aigw_local.template import FunctionSpec

ROOT = Path(__file__).resolve().parents[2]
# Overridable to test this plugin itself (tests/unit/test_aws_calls_check.py).
SNAPSHOT = Path(os.environ.get("AIGW_AWS_CALLS_SNAPSHOT") or ROOT / "tests" / "aws_calls.json")
SUITES = tuple((os.environ.get("AIGW_AWS_CALLS_SUITES") or "tests/unit tests/integration").split())
WRITE_ENV = "AIGW_WRITE_AWS_CALLS"
OUTPUT_KEY = "aigw_aws_calls"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("aigw_recorded_function", default=None)
_calls: dict[str, set[str]] = {}


def describe(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    name = f"{service}:{operation}"
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [f"{name}/{next(iter(item))}" for item in params.get("TransactItems", [])]
    if service == "dynamodb" and operation in ("Query", "Scan") and params.get("IndexName"):
        return [f"{name}/index"]
    return [name]


def _as(function: str, call: Callable[[], Any]) -> Any:
    token = _current.set(function)
    try:
        return call()
    finally:
        _current.reset(token)


def _attributed(function: str, body: Iterator[bytes]) -> Iterator[bytes]:
    iterator = iter(body)
    try:
        while True:
            try:
                piece = _as(function, lambda: next(iterator))
            except StopIteration:
                return
            yield piece
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            _as(function, close)


def _wrap(spec: FunctionSpec, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
    # Looks like the handler (its module, its name): the OpenAPI builder finds its app that way.
    @functools.wraps(handler)
    def recorded(event: dict[str, Any], context: Any) -> Any:
        result = _as(spec.logical_id, lambda: handler(event, context))
        if isinstance(result, StreamingResponse):
            result.body = _attributed(spec.logical_id, result.body)
            on_close = result.on_close
            if on_close is not None:
                result.on_close = lambda: _as(spec.logical_id, on_close)
        return result

    return recorded


def _install() -> None:
    original_call = botocore.client.BaseClient._make_api_call
    original_load = aigw_local.server.load_handler

    def make_api_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        function = _current.get()
        if function is not None:
            service = self.meta.service_model.service_name
            _calls.setdefault(function, set()).update(describe(service, operation, params))
        return original_call(self, operation, params)

    def load_handler(spec: FunctionSpec) -> Callable[..., Any]:
        return _wrap(spec, original_load(spec))

    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    aigw_local.server.load_handler = load_handler
    # Helpers imported before this plugin hold the original under their own name.
    for module in list(sys.modules.values()):
        if getattr(module, "load_handler", None) is original_load:
            module.load_handler = load_handler


_install()


def load_snapshot() -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return data


def _merge(into: dict[str, set[str]], raw: str) -> None:
    for function, calls in json.loads(raw).items():
        into.setdefault(function, set()).update(calls)


# ---- the check at the end of a whole run -----------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get(OUTPUT_KEY)
    if raw:
        _merge(_calls, raw)


def _whole_run(config: pytest.Config) -> bool:
    """The run was asked for the whole unit and integration suites, nothing filtered out."""
    option = config.option
    if option.keyword or option.markexpr or option.deselect or getattr(option, "lf", False):
        return False
    here = Path(config.invocation_params.dir)
    asked = [(here / arg.split("::")[0]).resolve() for arg in config.args] or [ROOT / "tests"]
    suites = [ROOT / suite for suite in SUITES]
    return all(any(suite == a or suite.is_relative_to(a) for a in asked) for suite in suites)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: hand the calls to the controller
        config.workeroutput[OUTPUT_KEY] = json.dumps({k: sorted(v) for k, v in _calls.items()})
        return
    if not _whole_run(config):
        return
    recorded = {name: sorted(calls) for name, calls in sorted(_calls.items())}
    if os.environ.get(WRITE_ENV):
        # Written even if tests failed: the template's own tests fail until it matches.
        SNAPSHOT.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
        return
    if exitstatus != 0:
        return
    expected = load_snapshot() if SNAPSHOT.exists() else {}
    if recorded == expected:
        return
    lines = ["The AWS calls the functions make are not the ones tests/aws_calls.json records:"]
    for name in sorted(set(recorded) | set(expected)):
        new = sorted(set(recorded.get(name, [])) - set(expected.get(name, [])))
        gone = sorted(set(expected.get(name, [])) - set(recorded.get(name, [])))
        if new or gone:
            lines.append(f"  {name}: now calls {new or '-'}; no longer calls {gone or '-'}")
    lines.append("Run `make aws-calls` to record them, then grant exactly those in template.yaml.")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "AWS calls", red=True)
        reporter.write_line("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
