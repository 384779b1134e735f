"""The local runner reads routes and the table from template.yaml and speaks API Gateway."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

from aigw_local import apigw, runner
from aigw_local import template as tpl
from aigw_local.server import Gateway


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


_BUSY_HANDLER = """
import time

busy = False


def handler(event, context):
    global busy
    overlapped = busy
    busy = True
    time.sleep(0.3)
    busy = False
    return {"statusCode": 200, "body": "overlapped" if overlapped else "alone"}
"""


def test_handlers_never_run_two_requests_at_once(tmp_path: Path) -> None:
    """Like a Lambda container: one request at a time. Powertools keeps the current event in
    class attributes, so overlapping requests would read each other's body and request id."""
    (tmp_path / "app.py").write_text(textwrap.dedent(_BUSY_HANDLER))
    spec = tpl.FunctionSpec(logical_id="ProbeFunction", code_uri=tmp_path, handler="app.handler")
    pattern, names = tpl._route_pattern("/probe")
    gateway = Gateway([tpl.Route("GET", "/probe", spec, pattern, names)])
    gateway.preload()
    answers: list[bytes] = []

    def one() -> None:
        response = gateway.dispatch(apigw.HttpRequest("GET", "/probe", "", [], b"", "127.0.0.1", "h"))
        assert isinstance(response, apigw.HttpResponse)
        answers.append(response.body)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [b"alone"] * 3
