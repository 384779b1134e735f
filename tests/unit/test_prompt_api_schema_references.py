"""Prompt API schemas never fetch anything (issue 11, case 9: a ``$ref`` to a URL made the
gateway fetch it on every call, with no timeout; ``file://`` was opened and the instance
metadata address requested). A schema that refers outside itself is refused when it is saved,
and validation runs with nothing to retrieve. A loopback server counts what reaches it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aigw.prompt_apis import store
from aigw.prompt_apis.model import Design
from tests.helpers.apigw import call
from tests.helpers.fake_upstream import FakeUpstream, Scripted
from tests.helpers.prompt_apis import design


@pytest.fixture
def listener() -> Iterator[FakeUpstream]:
    server = FakeUpstream(lambda request: Scripted(body={"type": "string"})).start()
    yield server
    server.stop()


def _with_property(schema: dict[str, Any]) -> dict[str, Any]:
    spec = design()
    spec["input_schema"]["properties"]["text"] = schema
    return spec


def _targets(listener: FakeUpstream) -> list[str]:
    return [
        f"{listener.url}/schema.json",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://example.com/schemas/text.json#/$defs/text",
        "other.json",  # relative: resolved against a base URI, still a document elsewhere
    ]


@pytest.mark.parametrize("keyword", ["$ref", "$dynamicRef"])
@pytest.mark.parametrize("target", range(5))
def test_a_schema_referring_outside_itself_is_refused_at_create(
    key: str, listener: FakeUpstream, keyword: str, target: int
) -> None:
    url = _targets(listener)[target]
    reply = call("POST", "/apis", body=_with_property({keyword: url}), key=key)
    assert reply.status == 400, reply.body
    problem = reply.json()
    assert problem["code"] == "external_reference"
    assert problem["param"] == f"input_schema.properties.text.{keyword}"
    assert listener.requests == []


def test_an_id_is_refused_in_either_schema_and_at_new_versions(key: str, listener: FakeUpstream) -> None:
    with_id = _with_property({"$id": f"{listener.url}/base/", "type": "string"})
    assert call("POST", "/apis", body=with_id, key=key).json()["param"] == "input_schema.properties.text.$id"
    assert call("POST", "/apis", body=design(), key=key).status == 201
    version = {k: v for k, v in _with_property({"$ref": f"{listener.url}/x"}).items() if k != "slug"}
    refused = call("POST", "/apis/summarize/versions", body=version, key=key)
    assert (refused.status, refused.json()["param"]) == (400, "input_schema.properties.text.$ref")
    output = {
        **{k: v for k, v in design().items() if k != "slug"},
        "output": {"mode": "json", "schema": {"type": "object", "items": {"$ref": "file:///etc/passwd"}}},
    }
    refused = call("POST", "/apis/summarize/versions", body=output, key=key)
    assert (refused.status, refused.json()["param"]) == (400, "output.schema.items.$ref")
    assert listener.requests == []


def test_references_inside_the_schema_work(key: str) -> None:
    spec = design()
    spec["input_schema"]["$defs"] = {"text": {"type": "string", "minLength": 3}}
    spec["input_schema"]["properties"]["text"] = {"$ref": "#/$defs/text"}
    # "$ref" as data (a const, an enum value) or as a property's name is not a reference.
    spec["input_schema"]["properties"]["$ref"] = {"const": {"$ref": "http://x/y"}}
    assert call("POST", "/apis", body=spec, key=key).status == 201
    short = call("POST", "/apis/summarize", body={"text": "ab"}, key=key)
    assert (short.status, short.json()["param"]) == (400, "text")
    assert call("POST", "/apis/summarize", body={"text": "abc"}, key=key).status == 200


def test_a_schema_stored_before_the_check_is_never_fetched(key: str, listener: FakeUpstream) -> None:
    assert call("POST", "/apis", body=design(), key=key).status == 201
    legacy = store.get_version("summarize", 1)
    assert legacy is not None
    spec = legacy.design.model_dump(by_alias=True)
    spec["input_schema"]["properties"]["text"] = {"$ref": f"{listener.url}/schema.json"}
    store.add_version(
        store.get("summarize"),
        legacy.model_copy(update={"version": 2, "design": Design.model_validate(spec)}),
        None,
    )  # type: ignore[arg-type]
    reply = call("POST", "/apis/summarize/dry-run", body={"variables": {"text": "hi"}, "version": 2}, key=key)
    assert reply.status == 409, reply.body
    assert reply.json()["code"] == "schema_unresolvable"
    assert listener.requests == []
