"""The local runner reads routes and the table from template.yaml and speaks API Gateway."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from aigw_local import apigw, runner
from aigw_local import template as tpl
from aigw_local.server import Gateway, make_server


def test_every_api_event_of_the_template_becomes_a_route() -> None:
    template = tpl.load()
    declared = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values()
        if e["Type"] == "Api"
    }
    assert {(r.method, r.path) for r in tpl.routes(template)} == declared
    assert ("POST", "/v1/chat/completions") in declared


def test_path_parameters_match_like_api_gateway() -> None:
    route = next(r for r in tpl.routes(tpl.load()) if r.path == "/admin/teams/{team_id}/keys/{key_id}")
    assert route.match("DELETE", "/admin/teams/acme/keys/key_1") == {"team_id": "acme", "key_id": "key_1"}
    assert route.match("GET", "/admin/teams/acme/keys/key_1") is None
    assert route.match("DELETE", "/admin/teams/acme/keys") is None
    assert route.match("DELETE", "/admin/teams/acme/keys/key_1/") == {"team_id": "acme", "key_id": "key_1"}


def test_greedy_proxy_paths_match_several_segments() -> None:
    route = next(r for r in tpl.routes(tpl.load()) if r.path == "/portal/{proxy+}")
    assert route.match("GET", "/portal/app.js") == {"proxy": "app.js"}
    assert route.match("GET", "/portal/a/b.js") == {"proxy": "a/b.js"}
    assert route.match("GET", "/portal/") is None
    index = next(r for r in tpl.routes(tpl.load()) if r.path == "/portal")
    assert index.match("GET", "/portal/") == {}


def test_table_definition_comes_from_the_template() -> None:
    definition = tpl.table_definition(tpl.load(), "t")
    assert definition["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert definition["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    assert tpl.ttl_attribute(tpl.load()) == "ttl"


def test_event_has_the_rest_api_proxy_shape() -> None:
    route = next(r for r in tpl.routes(tpl.load()) if r.path == "/admin/teams/{team_id}")
    request = apigw.HttpRequest(
        method="GET",
        path="/admin/teams/acme",
        query="a=1&a=2&b=",
        headers=[("X-Test", "1"), ("X-Test", "2")],
        body=b"",
        client_ip="127.0.0.1",
        host="127.0.0.1:3000",
    )
    event = apigw.build_event(request, route, {"team_id": "acme"})
    sample = json.loads((tpl.ROOT / "events/apigw/chat-completions.json").read_text())
    assert set(sample) == set(event)
    assert set(sample["requestContext"]) - {"domainPrefix"} <= set(event["requestContext"])
    assert event["resource"] == "/admin/teams/{team_id}"
    assert event["pathParameters"] == {"team_id": "acme"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueHeaders"]["X-Test"] == ["1", "2"]
    assert event["body"] is None


def test_binary_body_is_base64_encoded() -> None:
    route = tpl.routes(tpl.load())[0]
    request = apigw.HttpRequest("POST", route.path, "", [], b"\xff\xfe", "127.0.0.1", "h")
    event = apigw.build_event(request, route, {})
    assert event["isBase64Encoded"] is True


def test_proxy_result_headers_merge_and_malformed_results_are_502() -> None:
    response = apigw.parse_result(
        {"statusCode": 201, "headers": {"A": "1"}, "multiValueHeaders": {"B": ["2", "3"]}, "body": "ok"}
    )
    assert response.status == 201
    assert ("A", "1") in response.headers
    assert [v for k, v in response.headers if k == "B"] == ["2", "3"]
    assert apigw.parse_result({"body": "no status"}).status == 502


def test_local_environment_points_at_local_services(monkeypatch: object) -> None:
    env = runner.local_environment(tpl.load(), table_name="tbl", endpoint="http://127.0.0.1:1")
    assert env["TABLE_NAME"] == "tbl"
    assert env["DYNAMODB_ENDPOINT"] == "http://127.0.0.1:1"
    assert env["KEY_CACHE_SECONDS"] == "5"
    assert "OPENAI_API_KEY_PARAMETER" not in env  # locally, keys come from the environment


def test_invocations_never_overlap_in_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Powertools keeps the current event in a class attribute shared by every resolver, so two
    # invocations in flight would read each other's request (a report answered with another
    # request's grouping). The first request waits up to 2 s for the second to enter: it must not.
    monkeypatch.setattr(threading, "aigw_probe_entered", threading.Event(), raising=False)
    (tmp_path / "app.py").write_text(
        "import threading\n"
        "def handler(event, context):\n"
        "    entered = threading.aigw_probe_entered\n"
        "    if event['path'] == '/first':\n"
        "        overlapped = entered.wait(2)\n"
        "        return {'statusCode': 200, 'body': 'overlapped' if overlapped else 'alone'}\n"
        "    entered.set()\n"
        "    return {'statusCode': 200, 'body': 'second'}\n"
    )
    gateway = _probe_gateway(tmp_path, "ConcurrencyProbe")
    first = apigw.HttpRequest("GET", "/first", "", [], b"", "127.0.0.1", "h")
    second = apigw.HttpRequest("GET", "/second", "", [], b"", "127.0.0.1", "h")
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(gateway.dispatch, first)
        while not gateway_busy(gateway):
            threading.Event().wait(0.01)
        other = pool.submit(gateway.dispatch, second)
        assert (answer.result().body, other.result().body) == (b"alone", b"second")


def _probe_gateway(code: Path, name: str) -> Gateway:
    """A gateway sending every GET to the probe handler ``app.handler`` written into ``code``."""
    spec = tpl.FunctionSpec(name, code, "app.handler")
    pattern, names = tpl._route_pattern("/{proxy+}")
    return Gateway([tpl.Route("GET", "/{proxy+}", spec, pattern, names)])


def gateway_busy(gateway: Gateway) -> bool:
    return gateway._invoke.locked()


def test_the_answer_leaves_before_deferred_work_and_the_next_call_does_not_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A handler defers work (as a call's settle is deferred) that waits until the test has
    # read the answer over HTTP, and then until the next answer too: a server running it
    # before sending, or before serving the next request of the same keep-alive connection,
    # would make it wait 5 s in vain and say so. It must still run to its end.
    answered, next_answered = threading.Event(), threading.Event()
    log: list[str] = []
    monkeypatch.setattr(threading, "aigw_probe", (answered, next_answered, log), raising=False)
    (tmp_path / "app.py").write_text(
        "import threading\n"
        "from aigw import request_context\n"
        "def handler(event, context):\n"
        "    answered, next_answered, log = threading.aigw_probe\n"
        "    def settle():\n"
        "        log.append('after the answer' if answered.wait(5) else 'before the answer')\n"
        "        log.append('beside the next call' if next_answered.wait(5) else 'before the next call')\n"
        "    if event['path'] == '/call':\n"
        "        request_context.defer(settle)\n"
        "    return {'statusCode': 200, 'body': event['path']}\n"
    )
    gateway = _probe_gateway(tmp_path, "DeferProbe")
    server = make_server(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(timeout=10) as client:  # one keep-alive connection
            assert client.get(f"{base}/call").text == "/call"
            answered.set()
            assert client.get(f"{base}/next").text == "/next"
            next_answered.set()
    finally:
        server.shutdown()
        server.server_close()
    gateway.drain()  # what the runner does when it stops: deferred work is finished, not lost
    assert log == ["after the answer", "beside the next call"]


def test_one_runner_per_data_directory(tmp_path: Path) -> None:
    """A second runner on the same .local/ data would start a second DynamoDB Local on the
    same files: it stops at once with one line instead."""
    from aigw_local.__main__ import StartupError, _data_lock

    with (
        _data_lock(tmp_path / "dynamodb"),
        pytest.raises(StartupError, match="another local runner is using"),
        _data_lock(tmp_path / "dynamodb"),
    ):
        pass
    with _data_lock(tmp_path / "dynamodb"):  # free again once the first one is gone
        pass
