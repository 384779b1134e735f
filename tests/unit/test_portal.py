"""The portal function serves its own static files, safely and with the right types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.apigw import build_event, call, invoke_event

STATIC = Path(__file__).resolve().parents[2] / "functions/portal/static"


def test_index_loads_every_page_script_and_nothing_from_another_host() -> None:
    reply = call("GET", "/portal")  # the sample event's host is execute-api, stage "dev"
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    pages = sorted(p.name for p in STATIC.glob("page-*.js"))
    assert pages, "the portal ships pages"
    for name in pages:
        assert f'src="/dev/portal/{name}"' in reply.body
    assert "{{" not in reply.body
    urls = re.findall(r'(?:src|href)="([^"]+)"', reply.body)
    assert urls
    assert all(u.startswith(("/dev/portal/", "#")) for u in urls), urls
    csp = reply.header("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("core.js", "text/javascript"), ("portal.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_assets_have_their_content_type(name: str, content_type: str) -> None:
    reply = call("GET", f"/portal/{name}")
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").startswith(content_type)
    assert reply.body == (STATIC / name).read_text(encoding="utf-8")
    assert reply.header("X-Content-Type-Options") == "nosniff"


def test_unchanged_asset_answers_304() -> None:
    etag = call("GET", "/portal/app.js").header("ETag")
    assert etag
    again = call("GET", "/portal/app.js", headers={"If-None-Match": etag})
    assert (again.status, again.body) == (304, "")


@pytest.mark.parametrize(
    "path", ["/portal/nope.js", "/portal/..%2Fapp.py", "/portal/../app.py", "/portal/a/b"]
)
def test_only_shipped_files_are_served(path: str) -> None:
    reply = call("GET", path)
    assert reply.status == 404
    assert "import" not in reply.body


def test_on_a_custom_domain_or_the_local_runner_links_have_no_stage() -> None:
    event, route = build_event("GET", "/portal")
    event["requestContext"].update(domainName="127.0.0.1:3000", stage="local")
    reply = invoke_event(event, route)
    assert 'src="/portal/app.js"' in reply.body
    assert '<meta name="aigw-api-base" content="">' in reply.body
