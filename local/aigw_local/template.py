"""Reads ``template.yaml``: routes, handlers, environment and the table definition.

Routes come from the template and nowhere else, so the runner cannot drift from what deploys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags (!Ref, !Sub...) into their long form."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any] = field(default_factory=dict)
    timeout: int = 3


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: FunctionSpec
    pattern: re.Pattern[str]
    param_names: tuple[str, ...]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def _route_pattern(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    names: list[str] = []
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            greedy = name.endswith("+")
            name = name.rstrip("+")
            names.append(name)
            regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    # API Gateway serves /portal/ as /portal: one trailing slash is not part of the resource.
    return re.compile(regex + "/?"), tuple(names)


def functions(template: dict[str, Any]) -> list[FunctionSpec]:
    globals_fn = template.get("Globals", {}).get("Function", {})
    global_env = globals_fn.get("Environment", {}).get("Variables", {})
    specs = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                code_uri=ROOT / props["CodeUri"],
                handler=props.get("Handler", globals_fn.get("Handler", "app.handler")),
                environment=env,
                timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
            )
        )
    return specs


def routes(template: dict[str, Any]) -> list[Route]:
    by_id = {spec.logical_id: spec for spec in functions(template)}
    found: list[Route] = []
    for logical_id, resource in template.get("Resources", {}).items():
        if logical_id not in by_id:
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            pattern, names = _route_pattern(props["Path"])
            found.append(Route(props["Method"].upper(), props["Path"], by_id[logical_id], pattern, names))
    # Literal paths before templated ones, as API Gateway prefers the most specific match.
    found.sort(key=lambda r: (len(r.param_names), -len(r.path)))
    return found


def table_definition(template: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateTable arguments for the gateway table, from its CloudFormation properties."""
    props = template["Resources"]["GatewayTable"]["Properties"]
    definition: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    stream = props.get("StreamSpecification")
    if stream:
        # The stream feeds the DynamoDB event sources (aigw_local.streams), locally too.
        definition["StreamSpecification"] = {"StreamEnabled": True, **stream}
    return definition


def ttl_attribute(template: dict[str, Any]) -> str | None:
    spec = template["Resources"]["GatewayTable"]["Properties"].get("TimeToLiveSpecification", {})
    return spec.get("AttributeName") if spec.get("Enabled") else None
