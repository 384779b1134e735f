"""template.yaml as it deploys (SAM's transform, offline): long answers are not cut, API
Gateway's own answers are what clients parse, one stage, SnapStart where it pays."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import pytest

from aigw_local import template as tpl
from tests.helpers import sam

# API Gateway REST: a streamed integration may wait up to 15 minutes without a quota increase;
# a buffered one 29 s.
STREAMED_MAX_MS = 900_000
BUFFERED_MAX_MS = 29_000
# Lambda counts a cold start's init apart from Timeout: the integration waits for it too.
INIT_MS = 10_000


def _parameter(name: str) -> dict[str, Any]:
    parameter: dict[str, Any] = sam.source()["Parameters"][name]
    return parameter


def _number(value: Any) -> float:
    """A literal, or the largest value a Ref'd parameter may take."""
    name = sam.ref_name(value)
    if name is None:
        return float(value)
    parameter = _parameter(name)
    return float(parameter.get("MaxValue", parameter["Default"]))


# ---- 1. long answers ---------------------------------------------------------------------------


def test_every_streamed_integration_waits_as_long_as_its_function_may_run() -> None:
    checked = 0
    for name, props in sam.functions().items():
        if not sam.streams(props):
            continue
        timeout_ms = float(props["Timeout"]) * 1000
        for event_name, event in sam.api_events(props).items():
            where = f"{name}.{event_name}"
            assert event.get("ResponseTransferMode") == "RESPONSE_STREAM", where
            assert "TimeoutInMillis" in event, f"{where} keeps API Gateway's 29 s default"
            assert timeout_ms + INIT_MS <= event["TimeoutInMillis"] <= STREAMED_MAX_MS, where
            checked += 1
    assert checked >= 4  # chat completions, models, messages, prompt APIs (and their siblings)


def test_functions_answering_without_streaming_end_before_api_gateway_gives_up() -> None:
    for name, props in sam.functions().items():
        events = sam.api_events(props)
        if events and not sam.streams(props):
            assert float(props["Timeout"]) * 1000 <= BUFFERED_MAX_MS, name
            assert all(e.get("TimeoutInMillis", BUFFERED_MAX_MS) <= BUFFERED_MAX_MS for e in events.values())


def test_the_transformed_integrations_stream_with_those_timeouts() -> None:
    """What API Gateway receives: the streaming invocation path and the timeout."""
    body = sam.transformed()["Resources"]["GatewayApi"]["Properties"]["Body"]
    streamed = 0
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            if integration.get("responseTransferMode") == "STREAM":
                streamed += 1
                assert "/response-streaming-invocations" in json.dumps(integration["uri"]), (path, method)
                assert integration["timeoutInMillis"] > BUFFERED_MAX_MS, (path, method)
    assert streamed >= 4


def test_the_upstream_timeout_ends_before_the_function_does() -> None:
    """A vendor that never answers is a 504 from the gateway, metered and released, not a
    function killed by Lambda mid-call."""
    model_functions = 0
    for name, props in sam.functions().items():
        env = props["Environment"]["Variables"]
        if not any(k.endswith("_API_KEY_PARAMETER") and not k.startswith("STRIPE_") for k in env):
            continue  # calls no model vendor
        model_functions += 1
        assert "UPSTREAM_TIMEOUT_SECONDS" in env, name
        timeout = float(props["Timeout"])
        for var, value in env.items():
            if var.endswith("_TIMEOUT_SECONDS"):
                assert _number(value) + 10 <= timeout, (name, var)
    assert model_functions >= 3


# ---- API Gateway's own answers ---------------------------------------------------------------


def _responses() -> dict[str, Any]:
    api = sam.source()["Resources"]["GatewayApi"]["Properties"]
    responses: dict[str, Any] = api["GatewayResponses"]
    return responses


def _rendered(template: str, message: str = 'Internal server error: "quoted"') -> Any:
    # $context.error.messageString arrives quoted and escaped; other $context values are plain.
    text = template.replace("$context.error.messageString", json.dumps(message))
    text = re.sub(r"\$context\.[A-Za-z.]+", "x", text)
    return json.loads(text)


KINDS = ["DEFAULT_4XX", "DEFAULT_5XX", "INTEGRATION_TIMEOUT", "THROTTLED", "WAF_FILTERED"]


@pytest.mark.parametrize("kind", KINDS)
def test_gateway_responses_are_json_in_the_shape_v1_clients_read(kind: str) -> None:
    body = _rendered(_responses()[kind]["ResponseTemplates"]["application/json"])
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert body["code"] == error["code"]  # and problem JSON for the other routes
    assert body["type"].startswith("urn:aigw:problem:")


def test_every_gateway_response_body_is_json() -> None:
    for kind, response in _responses().items():
        for template in response.get("ResponseTemplates", {}).values():
            assert isinstance(_rendered(template), dict), kind


class _Fixed(BaseHTTPRequestHandler):
    status = 504
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def timed_out_gateway() -> Iterator[str]:
    response = _responses()["INTEGRATION_TIMEOUT"]
    body = response["ResponseTemplates"]["application/json"].encode()
    handler = type("TimedOut", (_Fixed,), {"status": int(response["StatusCode"]), "body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_timed_out_integration_is_a_504_the_sdks_raise_as_such(timed_out_gateway: str) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=timed_out_gateway + "/v1", max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 504
    assert raised.value.code == "gateway_timeout"
    claude = anthropic.Anthropic(api_key="sk-test", base_url=timed_out_gateway, max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude.messages.create(model="mock/echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert failed.value.status_code == 504


def test_throttled_answers_say_when_to_retry() -> None:
    for kind in ("THROTTLED", "WAF_FILTERED"):
        response = _responses()[kind]
        assert response["StatusCode"] == "429"
        assert re.fullmatch(r"'\d+'", response["ResponseParameters"]["Headers"]["Retry-After"])


# ---- the stage -------------------------------------------------------------------------------


def test_the_api_has_one_stage_named_after_the_stage_parameter() -> None:
    transformed = sam.transformed()
    stages = sam.resources(transformed, "AWS::ApiGateway::Stage")
    assert [s["Properties"]["StageName"] for s in stages.values()] == [{"Ref": "Stage"}]
    # A deployment with a StageName creates a stage of that name too (SAM's "Stage" stage).
    for deployment in sam.resources(transformed, "AWS::ApiGateway::Deployment").values():
        assert "StageName" not in deployment["Properties"]


def test_the_stage_logs_every_request_as_one_json_object() -> None:
    (stage,) = sam.resources(sam.transformed(), "AWS::ApiGateway::Stage").values()
    setting = stage["Properties"]["AccessLogSetting"]
    assert sam.ref_name(setting["DestinationArn"]) == "ApiAccessLogGroup"
    record = _rendered(setting["Format"])
    assert {"requestId", "ip", "httpMethod", "resourcePath", "status", "error"} <= set(record)


# ---- SnapStart ---------------------------------------------------------------------------------


def test_functions_behind_the_api_restore_from_snapshots_and_the_others_do_not() -> None:
    for name, props in sam.functions().items():
        assert props.get("AutoPublishAlias"), name  # SnapStart only applies to published versions
        assert props.get("AutoPublishAliasAllProperties") is True, name  # a new layer: a new version
        apply_on = props["SnapStart"]["ApplyOn"]
        if sam.api_events(props):
            assert apply_on == {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}, name
        else:
            assert apply_on == "None", name  # no caller waits on a stream consumer or a schedule
        # SnapStart cannot be combined with provisioned concurrency.
        assert "ProvisionedConcurrencyConfig" not in props, name


# ---- the README's deploy walk-through matches the template --------------------------------------


def _deploy_section() -> str:
    readme = (tpl.ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]


def test_the_deploy_section_names_only_parameters_and_outputs_the_template_has() -> None:
    text = _deploy_section()
    parameters, outputs = set(sam.source()["Parameters"]), set(sam.source()["Outputs"])
    for name in re.findall(r'`?([A-Z][A-Za-z]+)="', text):  # Parameter="value" overrides
        assert name in parameters, name
    for name in re.findall(r"`([A-Z][A-Za-z]+(?:Url|Arn|Name))`", text):
        assert name in outputs, name


def test_the_secrets_the_readme_has_you_put_are_the_ones_the_functions_read() -> None:
    text = _deploy_section()
    named = set(re.findall(r"/aigw/dev/([a-z-]+)", text))
    named |= {n.strip(",. ") for n in re.findall(r"([a-z]+(?:-[a-z]+)*-(?:key|secret))\b", text)}
    read = {
        str(sam.sub_text(value)).removeprefix("${SecretsPath}${Stage}/")
        for props in sam.functions().values()
        for var, value in props["Environment"]["Variables"].items()
        if var.endswith("_PARAMETER")
    }
    assert named == read
