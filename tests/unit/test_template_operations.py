"""Operations in template.yaml (docs/operations.md): every function, queue and stream consumer is
watched, logs expire, the methods anyone can call have a small throttle, nothing reserves
concurrency unless asked (a new account must deploy), and the optional WAF rule."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import sam
from tests.helpers.apigw import call

TOPIC = {"Ref": "BillingNotificationsTopic"}


def _alarms() -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in sam.resources(sam.source(), "AWS::CloudWatch::Alarm").items()}


def _watching(namespace: str, metric: str, dimension: str) -> dict[str, dict[str, Any]]:
    """Alarms on ``namespace/metric``, by the logical id their ``dimension`` points at."""
    found = {}
    for alarm in _alarms().values():
        if (alarm["Namespace"], alarm["MetricName"]) != (namespace, metric):
            continue
        for dim in alarm["Dimensions"]:
            if dim["Name"] == dimension:
                found[str(sam.ref_name(dim["Value"]))] = alarm
    return found


def test_every_alarm_tells_the_operators_topic_and_is_named_for_its_stage() -> None:
    assert len(_alarms()) >= 2 * len(sam.functions())
    for name, alarm in _alarms().items():
        assert TOPIC in alarm["AlarmActions"], name
        # The topic's policy lets this stage's alarms publish by that name (aws:SourceArn).
        assert str(sam.sub_text(alarm["AlarmName"])).startswith("aigw-${Stage}-"), name


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_alarm_on_its_errors_and_its_throttles(metric: str) -> None:
    watched = _watching("AWS/Lambda", metric, "FunctionName")
    assert set(sam.functions()) <= set(watched)
    for alarm in watched.values():
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_queue_has_an_alarm_on_its_depth() -> None:
    watched = _watching("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    assert set(sam.resources(sam.source(), "AWS::SQS::Queue")) == set(watched)
    assert all(a["Threshold"] == 1 for a in watched.values())  # one message is one lost batch


def test_every_stream_consumer_has_an_alarm_on_its_iterator_age() -> None:
    consumers = {
        name
        for name, props in sam.functions().items()
        if any(e["Type"] in ("DynamoDB", "Kinesis") for e in (props.get("Events") or {}).values())
    }
    assert consumers
    assert consumers <= set(_watching("AWS/Lambda", "IteratorAge", "FunctionName"))


def test_the_api_has_an_alarm_on_its_5xx_rate() -> None:
    api_name = sam.source()["Resources"]["GatewayApi"]["Properties"]["Name"]
    (alarm,) = [a for a in _alarms().values() if a["MetricName"] == "5XXError"]
    assert alarm["Namespace"] == "AWS/ApiGateway"
    assert {"Name": "ApiName", "Value": api_name} in alarm["Dimensions"]
    assert alarm["Statistic"] == "Average"  # a rate: vendor 5xx reach callers too


def test_the_dashboard_shows_every_function_queue_the_api_and_the_table() -> None:
    (dashboard,) = sam.resources(sam.source(), "AWS::CloudWatch::Dashboard").values()
    body = str(sam.sub_text(dashboard["Properties"]["DashboardBody"]))
    for name in sam.functions():
        assert "${" + name + "}" in body, name
    for queue in sam.resources(sam.source(), "AWS::SQS::Queue"):
        assert "${" + queue + ".QueueName}" in body, queue
    assert "aigw-${Stage}" in body
    assert "${GatewayTable}" in body


def test_every_function_logs_to_a_group_that_expires() -> None:
    groups = sam.resources(sam.source(), "AWS::Logs::LogGroup")
    used = {str(sam.ref_name(props["LoggingConfig"]["LogGroup"])) for props in sam.functions().values()}
    assert used <= set(groups)
    assert len(used) == len(sam.functions())  # one each
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert group["DeletionPolicy"] == "Delete", name


def test_nothing_reserves_concurrency_unless_asked() -> None:
    """A new account's concurrency quota can be 10, all of it unreservable: with the defaults the
    stack must deploy there. Each reservation is a parameter that defaults to 0 (none)."""
    parameters = sam.source()["Parameters"]
    conditions = sam.source()["Conditions"]
    reserved = {}
    for name, props in sam.functions().items():
        value = props.get("ReservedConcurrentExecutions")
        if value is None:
            continue
        condition, when, otherwise = value["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, name
        parameter = str(sam.ref_name(when))
        assert conditions[condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, 0]}]}, name
        assert parameters[parameter]["Default"] == 0, name
        reserved[name] = parameter
    # A flood on the model routes cannot take what the webhook and the admin API need.
    model_routes = {"InvokeFunction", "MessagesFunction", "PromptApisFunction"}
    assert model_routes | {"StripeWebhookFunction"} <= set(reserved)
    assert {"AdminFunction", "BillingAdminFunction", "CatalogAdminFunction"} <= set(reserved)


def _method_settings() -> dict[tuple[str, str], dict[str, Any]]:
    api = sam.source()["Resources"]["GatewayApi"]["Properties"]
    return {(s["ResourcePath"], s["HttpMethod"]): s for s in api["MethodSettings"]}


def _resource_path(path: str) -> str:
    """A MethodSetting's ResourcePath: the path with its slashes escaped as ~1, after a /."""
    return "/" + path.replace("/", "~1")


def test_every_method_is_throttled() -> None:
    default = _method_settings()[("/*", "*")]
    assert sam.ref_name(default["ThrottlingRateLimit"]) == "ThrottleRateLimit"
    assert sam.ref_name(default["ThrottlingBurstLimit"]) == "ThrottleBurstLimit"


def test_every_method_that_answers_without_a_key_has_the_small_throttle() -> None:
    """Public is what a request without a key gets past the key check with, asked of each
    route's own handler; those methods must not share the paid routes' budget."""
    settings = _method_settings()
    public = []
    for name, props in sam.functions().items():
        for event in sam.api_events(props).values():
            path = re.sub(r"\{(\w+)\+?\}", "x", event["Path"])
            status = call(event["Method"], path, raw_body="{}" if event["Method"] != "GET" else None).status
            if status == 401:
                continue
            public.append(event["Path"])
            setting = settings.get((_resource_path(event["Path"]), event["Method"]))
            assert setting is not None, f"{name}: {event['Method']} {event['Path']} answers without a key"
            assert sam.ref_name(setting["ThrottlingRateLimit"]) == "PublicThrottleRateLimit"
            assert sam.ref_name(setting["ThrottlingBurstLimit"]) == "PublicThrottleBurstLimit"
    assert {"/webhooks/stripe", "/portal", "/billing/checkout"} <= set(public)


def test_the_optional_web_acl_limits_requests_per_ip_on_the_stage() -> None:
    resources = sam.source()["Resources"]
    acl = resources["GatewayWebAcl"]
    assert acl["Condition"] == "HasWaf"
    (rule,) = acl["Properties"]["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert (rate["Limit"], rate["AggregateKeyType"]) == ({"Ref": "WafRateLimit"}, "IP")
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    association = resources["GatewayWebAclAssociation"]
    assert association["Condition"] == "HasWaf"
    assert "/stages/${GatewayApi.Stage}" in str(sam.sub_text(association["Properties"]["ResourceArn"]))
    assert sam.source()["Parameters"]["WafRateLimit"]["Default"] == 0  # billed: off unless asked
