"""Least privilege in template.yaml, as deployed (SAM's transform): each function may make
exactly the calls its code makes (recorded while the tests drive its handler,
tests/aws_calls.json), on this stage's resources only; nothing is granted on "*" unless AWS
offers no narrower resource, and that is said here and in docs/decisions/0020-least-privilege.md."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from aigw_local import template as tpl
from tests.helpers import aws_calls, sam
from tests.helpers.sam import Statement

TABLE = "GatewayTable"
# The IAM action each kind of item in a TransactWriteItems needs.
ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
STREAM_ACTIONS = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
# The IAM actions behind the other calls the code makes.
ACTIONS = {
    "bedrock-runtime:Converse": "bedrock:InvokeModel",
    "bedrock-runtime:ConverseStream": "bedrock:InvokeModelWithResponseStream",
    "bedrock-runtime:InvokeModel": "bedrock:InvokeModel",
    "bedrock-runtime:InvokeModelWithResponseStream": "bedrock:InvokeModelWithResponseStream",
}

# Resource "*" only where AWS has no narrower resource for the actions (documented in
# docs/decisions/0020-least-privilege.md).
STAR_ALLOWED: dict[frozenset[str], str] = {
    frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}): "X-Ray's writes take no resource",
}
# AWS managed policies, per role, and why.
AWS_MANAGED_ALLOWED: dict[str, dict[str, str]] = {
    "ApiGatewayLogsRole": {
        "service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
            "the account-wide role API Gateway logs every API of the account and region with"
        ),
    },
}


def _notification_source() -> str:
    try:  # the billing package's notifications (before it was a package: aigw.notifications)
        from aigw.billing import notifications  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        from aigw import notifications  # type: ignore[no-redef, unused-ignore]
    return str(notifications.SOURCE)


def _roles() -> dict[str, str]:
    """Function -> its role's logical id (source template)."""
    return {name: str(sam.ref_name(props.get("Role"))) for name, props in sam.functions().items()}


def _statements(function: str) -> list[Statement]:
    return sam.role_statements(sam.transformed(), _roles()[function])


def _allowed(function: str) -> list[Statement]:
    return [s for s in _statements(function) if s.effect == "Allow"]


def _actions(function: str) -> set[str]:
    return {a for s in _allowed(function) for a in s.actions}


def _env(function: str) -> dict[str, Any]:
    variables: dict[str, Any] = sam.functions()[function]["Environment"]["Variables"]
    return variables


# ---- every function has a role of its own -------------------------------------------------------


def test_every_function_has_a_role_of_its_own_that_only_lambda_assumes() -> None:
    roles = _roles()
    assert all(role != "None" for role in roles.values()), "a function without Role gets SAM's roles"
    assert len(set(roles.values())) == len(roles), "functions share a role"
    transformed = sam.transformed()
    for function, role in roles.items():
        trust = transformed["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ], function


def test_no_statement_grants_everything_and_no_star_resource_is_left_unexplained() -> None:
    transformed = sam.transformed()
    for role in sam.resources(transformed, "AWS::IAM::Role"):
        for managed in sam.aws_managed_policies(transformed, role):
            text = str(sam.sub_text(managed) or managed)
            name = text.split(":policy/", 1)[-1]
            assert name in AWS_MANAGED_ALLOWED.get(role, {}), f"{role} has the AWS managed policy {text}"
        for stmt in sam.role_statements(transformed, role):
            assert not any(a == "*" or a.endswith(":*") for a in stmt.actions), stmt
            for resource in stmt.resources:
                text = sam.sub_text(resource)
                if text == "*":
                    assert frozenset(stmt.actions) in STAR_ALLOWED, f"{stmt.source}: {stmt.actions} on *"
                elif text is not None and text.startswith("arn:"):
                    region, account = text.split(":")[3:5]
                    if "*" in region or "*" in account:
                        # Only regions the operator listed (Bedrock's cross-region profiles).
                        assert "aws:RequestedRegion" in stmt.condition.get("StringEquals", {}), stmt


def test_logs_go_to_the_functions_own_log_group_only() -> None:
    for function, props in sam.functions().items():
        group = sam.ref_name(props["LoggingConfig"]["LogGroup"])
        writes = [s for s in _allowed(function) if "logs:PutLogEvents" in s.actions]
        assert [sam.ref_name(r) for s in writes for r in s.resources] == [group], function
        assert {a for s in writes for a in s.actions} == {"logs:CreateLogStream", "logs:PutLogEvents"}


# ---- DynamoDB: exactly what the code calls ----------------------------------------------------


def _needed_dynamodb(calls: list[str]) -> tuple[set[str], set[str], bool]:
    direct: set[str] = set()
    in_transactions: set[str] = set()
    index = False
    for call in calls:
        service, _, operation = call.partition(":")
        if service != "dynamodb":
            continue
        operation, _, detail = operation.partition("/")
        if operation == "TransactWriteItems":
            in_transactions.add(f"dynamodb:{ITEM_ACTIONS[detail]}")
        elif operation == "TransactGetItems":
            in_transactions.add("dynamodb:GetItem")
        elif detail == "index":
            index = True
        else:
            direct.add(f"dynamodb:{operation}")
    return direct, in_transactions - direct, index


MODEL_FUNCTIONS = ("InvokeFunction", "MessagesFunction", "PromptApisFunction")


def _granted_dynamodb(function: str) -> tuple[set[str], set[str], bool]:
    direct: set[str] = set()
    in_transactions: set[str] = set()
    index = False
    for stmt in _allowed(function):
        for resource in stmt.resources:
            if sam.ref_name(resource) == TABLE and isinstance(resource, dict) and "Fn::GetAtt" in resource:
                if resource["Fn::GetAtt"][1] == "StreamArn":
                    continue
                any_of = stmt.condition.get("ForAnyValue:StringEquals", {})
                enclosing = any_of.get("dynamodb:EnclosingOperation")
                if enclosing is not None:
                    assert enclosing == ["TransactWriteItems"], stmt
                    in_transactions.update(stmt.actions)
                else:
                    direct.update(stmt.actions)
            elif (sam.sub_text(resource) or "").startswith("${GatewayTable.Arn}/index/"):
                assert stmt.actions == ("dynamodb:Query",), stmt
                index = True
    return direct, in_transactions, index


def test_each_function_may_make_exactly_the_dynamodb_calls_it_makes() -> None:
    recorded = aws_calls.load_snapshot()
    assert set(recorded) <= set(sam.functions()), "tests/aws_calls.json names a function the template lacks"
    mismatched = {}
    # The model functions run one core path (admission, leases, the meter) whose branches the
    # tests reach through whichever route they drive: each may make any call one of them makes.
    shared = [c for f in MODEL_FUNCTIONS for c in recorded.get(f, [])]
    for function in sam.functions():
        needed = _needed_dynamodb(shared if function in MODEL_FUNCTIONS else recorded.get(function, []))
        granted = _granted_dynamodb(function)
        if needed != granted:
            mismatched[function] = {"calls": needed, "granted": granted}
    assert mismatched == {}


def test_only_stream_consumers_read_the_table_stream_and_their_failures_reach_their_queue() -> None:
    for function, props in sam.functions().items():
        consumes = [e for e in (props.get("Events") or {}).values() if e["Type"] == "DynamoDB"]
        stream = [s for s in _allowed(function) if set(s.actions) & STREAM_ACTIONS]
        if not consumes:
            assert stream == [], function
            continue
        assert {a for s in stream for a in s.actions} == STREAM_ACTIONS
        assert [r for s in stream for r in s.resources] == [{"Fn::GetAtt": [TABLE, "StreamArn"]}]
        queues = {
            sam.ref_name(e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]) for e in consumes
        }
        sends = [s for s in _allowed(function) if "sqs:SendMessage" in s.actions]
        assert {sam.ref_name(r) for s in sends for r in s.resources} == queues, function


def test_every_other_call_the_code_makes_is_granted() -> None:
    for function, calls in aws_calls.load_snapshot().items():
        granted = _actions(function)
        for call in calls:
            if call.startswith("dynamodb:"):
                continue
            action = ACTIONS.get(call, call)
            assert action in granted, f"{function} calls {call} without {action}"


# ---- secrets: this stage's, and only the ones each function reads ------------------------------


def _parameter_arn(name_text: str) -> str:
    return f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{name_text}"


def test_each_function_reads_exactly_the_ssm_parameters_it_is_given() -> None:
    for function in sam.functions():
        names = {str(sam.sub_text(v)) for k, v in _env(function).items() if k.endswith("_PARAMETER")}
        reads = [s for s in _allowed(function) if "ssm:GetParameter" in s.actions]
        assert all(s.actions == ("ssm:GetParameter",) for s in reads), function
        granted = {sam.sub_text(r) for s in reads for r in s.resources}
        assert granted == {_parameter_arn(n) for n in names}, function


def test_every_secret_lives_under_its_own_stage_path() -> None:
    """Prod never reads dev: every parameter name is <SecretsPath><Stage>/<name>."""
    for function in sam.functions():
        for var, value in _env(function).items():
            if var.endswith("_PARAMETER"):
                text = str(sam.sub_text(value))
                assert text.startswith("${SecretsPath}${Stage}/"), (function, var, text)
                prod = sam.render(value, {"SecretsPath": "/aigw/", "Stage": "prod"})
                assert prod is not None
                assert prod.startswith("/aigw/prod/")


def test_vendor_keys_reach_only_the_functions_that_call_models() -> None:
    for function in sam.functions():
        env = _env(function)
        vendors = {k for k in env if k.endswith("_API_KEY_PARAMETER") and not k.startswith("STRIPE_")}
        calls_models = "AWS_LAMBDA_EXEC_WRAPPER" in env and "UPSTREAM_TIMEOUT_SECONDS" in env
        assert bool(vendors) == calls_models, function
        bedrock = [s for s in _allowed(function) if any(a.startswith("bedrock:") for a in s.actions)]
        assert bool(bedrock) == calls_models, function
        for stmt in bedrock:
            assert set(stmt.actions) == {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
            regions = stmt.condition["StringEquals"]["aws:RequestedRegion"]
            assert regions["Fn::If"][0] == "HasBedrockModelRegions"


def test_the_billing_link_key_and_notifications_go_where_they_are_used() -> None:
    for function in sam.functions():
        env = _env(function)
        reads = [s for s in _allowed(function) if "secretsmanager:GetSecretValue" in s.actions]
        secret = [r for s in reads for r in s.resources]
        expected = [env["BILLING_LINK_SECRET_ID"]] if "BILLING_LINK_SECRET_ID" in env else []
        if "MPP_CHALLENGE_SECRET_ID" in env and "STRIPE_API_KEY_PARAMETER" in env:
            # The functions that charge agents sign and check machine payment challenges; the
            # others only say whether challenges can be offered (the key's presence).
            expected.append(env["MPP_CHALLENGE_SECRET_ID"])
        assert secret == expected, function
        events = [s for s in _allowed(function) if "events:PutEvents" in s.actions]
        assert bool(events) == ("EVENT_BUS_NAME" in env), function
        for stmt in events:
            assert stmt.condition == {"StringEquals": {"events:source": _notification_source()}}


def test_kms_decrypt_is_only_for_the_secrets_key_through_ssm() -> None:
    for function in sam.functions():
        for stmt in _allowed(function):
            if "kms:Decrypt" in stmt.actions:
                assert stmt.resources == ({"Ref": "SecretsKmsKeyArn"},)
                assert "kms:ViaService" in stmt.condition["StringEquals"]


# ---- who may publish to the operators' topic ----------------------------------------------------


def test_only_this_stacks_rule_and_alarms_may_publish_to_the_topic() -> None:
    (policy,) = sam.resources(sam.source(), "AWS::SNS::TopicPolicy").values()
    for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
        conditions = stmt["Condition"]
        source_arn = {**conditions.get("ArnEquals", {}), **conditions.get("ArnLike", {})}.get("aws:SourceArn")
        assert source_arn is not None, stmt
        assert list(stmt["Principal"]) == ["Service"], stmt


# ---- the deploy configuration keeps stages apart ------------------------------------------------


def test_each_samconfig_environment_deploys_its_own_stage() -> None:
    config = tomllib.loads((tpl.ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    stages = set(sam.source()["Parameters"]["Stage"]["AllowedValues"])
    for env, sections in config.items():
        if not isinstance(sections, dict) or "deploy" not in sections:
            continue
        overrides = sections["deploy"]["parameters"]["parameter_overrides"]
        text = " ".join(overrides) if isinstance(overrides, list) else overrides
        stage = env if env in stages else "dev"
        assert re.findall(r'\bStage="?(\w+)', text) == [stage], env
        for other in stages - {stage}:
            assert f"/{other}/" not in text, (env, other)
