"""Property-based check of the whole API against its own OpenAPI document (schemathesis):
whatever the input, no 5xx, and every answer has a documented status, content type and shape.

Bounded: a few examples per operation, no shrinking, against the local runner on loopback.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from aigw_local import openapi
from tests.e2e.conftest import Runner

schema = schemathesis.openapi.from_dict(openapi.build())

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.e2e
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_document(case: schemathesis.Case, runner: Runner) -> None:
    case.call_and_validate(
        base_url=runner.base_url,
        headers={"Authorization": f"Bearer {runner.admin_key}"},
        checks=CHECKS,
        timeout=30,
    )


def test_document_declares_every_template_route_and_its_errors() -> None:
    from aigw_local import template as tpl

    document = openapi.build()
    routes = {
        (r.method.lower(), r.path) for r in tpl.routes(tpl.load()) if r.path not in openapi.NOT_JSON_API
    }
    documented = {
        ("any" if m == openapi.ANY_METHOD else m, p) for p, ops in document["paths"].items() for m in ops
    }
    assert documented == routes
    # The /v1 catch-all (any other path or method) is declared with its OpenAI-shaped 404 and 405.
    catch_all = document["paths"]["/v1/{proxy+}"][openapi.ANY_METHOD]["responses"]
    assert set(catch_all) == {"404", "405"}
    assert all("application/json" in r["content"] for r in catch_all.values())
    # A model id holds a slash: the greedy template parameter is the document's.
    retrieve = document["paths"]["/v1/models/{model+}"]["get"]
    assert [p["name"] for p in retrieve["parameters"] if p["in"] == "path"] == ["model+"]
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert chat["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletion"
    }
    assert "application/json" in chat["401"]["content"]
    assert "Retry-After" in chat["503"]["headers"]
    admin = document["paths"]["/admin/teams"]["post"]["responses"]
    assert set(admin) & {"200", "201", "422"} == {"201"}
    assert "application/problem+json" in admin["403"]["content"]
