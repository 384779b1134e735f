"""template.yaml read as CloudFormation will deploy it: SAM's transform, run offline, and small
readers of what the tests look at (functions, their events and roles, IAM statements)."""

from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import dataclass
from typing import Any

from samtranslator.translator.transform import transform

from aigw_local import template as tpl

Template = dict[str, Any]


@functools.cache
def source() -> Template:
    return tpl.load()


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@functools.cache
def transformed() -> Template:
    """What SAM turns template.yaml into (code locations replaced, as `sam package` does)."""
    template = copy.deepcopy(source())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://bucket/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://bucket/layer.zip"
    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region or "us-east-1"
    try:
        result: Template = transform(template, {}, _NoManagedPolicies())
    finally:
        if region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
    return result


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


def functions() -> dict[str, dict[str, Any]]:
    """The SAM functions, their properties with the Globals they inherit."""
    template = source()
    globals_fn = template.get("Globals", {}).get("Function", {})
    found = {}
    for name, resource in resources(template, "AWS::Serverless::Function").items():
        props = {**globals_fn, **resource.get("Properties", {})}
        env = {**globals_fn.get("Environment", {}).get("Variables", {})}
        env.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        props["Environment"] = {"Variables": env}
        found[name] = props
    return found


def api_events(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: e["Properties"] for k, e in (props.get("Events") or {}).items() if e.get("Type") == "Api"}


def streams(props: dict[str, Any]) -> bool:
    return any(e.get("ResponseTransferMode") == "RESPONSE_STREAM" for e in api_events(props).values())


def ref_name(value: Any) -> str | None:
    """The logical id a Ref or GetAtt points at."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def sub_text(value: Any) -> str | None:
    """The text of a plain string or of a !Sub (variables left as ${...})."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    return None


def render(value: Any, parameters: dict[str, str]) -> str | None:
    """A !Sub (or plain) string with the given parameter values filled in."""
    text = sub_text(value)
    if text is None:
        return None
    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: parameters.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class Statement:
    source: str  # where it came from: "<Role>/<policy>" or "<ManagedPolicy>"
    effect: str
    actions: tuple[str, ...]
    resources: tuple[Any, ...]
    condition: dict[str, Any]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any], where: str) -> list[Statement]:
    found = []
    for raw in _as_list(document.get("Statement", [])):
        if isinstance(raw, dict) and "Fn::If" in raw:  # a conditional statement: both branches
            branches = [b for b in raw["Fn::If"][1:] if isinstance(b, dict) and "Effect" in b]
        else:
            branches = [raw]
        for stmt in branches:
            found.append(
                Statement(
                    source=where,
                    effect=stmt["Effect"],
                    actions=tuple(_as_list(stmt.get("Action", []))),
                    resources=tuple(_as_list(stmt.get("Resource", []))),
                    condition=stmt.get("Condition", {}),
                )
            )
    return found


def _managed_names(value: Any) -> list[str]:
    names = []
    for item in _as_list(value):
        if isinstance(item, dict) and "Fn::If" in item:
            names += [n for branch in item["Fn::If"][1:] for n in _managed_names(branch)]
        elif ref_name(item) is not None and ref_name(item) != "AWS::NoValue":
            names.append(str(ref_name(item)))
    return names


def role_statements(template: Template, role: str) -> list[Statement]:
    """Every statement a role's policies give it: inline, and managed policies of the template."""
    props = template["Resources"][role]["Properties"]
    found = []
    for policy in props.get("Policies", []):
        found += statements(policy["PolicyDocument"], f"{role}/{policy['PolicyName']}")
    for name in _managed_names(props.get("ManagedPolicyArns", [])):
        managed = template["Resources"][name]
        found += statements(managed["Properties"]["PolicyDocument"], name)
    return found


def aws_managed_policies(template: Template, role: str) -> list[Any]:
    """ManagedPolicyArns that are not policies of this template (AWS managed ones)."""
    props = template["Resources"][role]["Properties"]
    return [
        item
        for item in _as_list(props.get("ManagedPolicyArns", []))
        if not (isinstance(item, dict) and ("Fn::If" in item or ref_name(item) in template["Resources"]))
    ]
