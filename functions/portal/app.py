"""The developer portal: static HTML, CSS and JS shipped with this function, no build step.

The page holds no data; it signs in with an API key kept in ``sessionStorage`` and calls the
JSON APIs (``/me``, ``/reports``, ...) with it. Pages are plain scripts named ``page-*.js``:
every such file next to this handler is loaded, so adding a page is adding a file.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from aigw import web
from aigw.errors import NotFound

logger = Logger(service="aigw-portal")
app = web.resolver()

STATIC = Path(__file__).resolve().parent / "static"
PUBLIC = frozenset({"/portal", "/portal/{proxy+}"})
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,100}$")
# Everything comes from this origin: no CDN, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and _NAME.match(path.name) and path.suffix in _TYPES:
            body = path.read_text(encoding="utf-8")
            etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
            assets[path.name] = Asset(_TYPES[path.suffix], body, etag)
    return assets


ASSETS = _load_assets()  # read once per container
PAGE_SCRIPTS = [name for name in ASSETS if name.startswith("page-") and name.endswith(".js")]


def _stage_prefix() -> str:
    """``/dev`` on an execute-api host (the stage is in the URL), empty elsewhere (custom
    domain at its root, or the local runner)."""
    ctx = app.current_event.request_context
    if (ctx.domain_name or "").endswith(".amazonaws.com") and ctx.stage:
        return "/" + ctx.stage
    return ""


def _send(asset: Asset, body: str | None = None) -> Response[str]:
    content = asset.body if body is None else body
    etag = asset.etag if body is None else '"' + hashlib.sha256(content.encode()).hexdigest()[:16] + '"'
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if (
        app.current_event.headers.get("if-none-match") == etag
        or app.current_event.headers.get("If-None-Match") == etag
    ):
        return Response(304, asset.content_type, "", headers=headers)
    return Response(200, asset.content_type, content, headers=headers)


@app.get("/portal")
def index() -> Response[str]:
    prefix = _stage_prefix()
    base = html.escape(prefix + "/portal/")
    scripts = "\n".join(f'  <script src="{base}{html.escape(name)}" defer></script>' for name in PAGE_SCRIPTS)
    page = (
        ASSETS["index.html"]
        .body.replace("{{PAGE_SCRIPTS}}", scripts)
        .replace("{{BASE}}", base)
        .replace("{{API_BASE}}", html.escape(prefix))
    )
    return _send(ASSETS["index.html"], page)


@app.get("/portal/<name>")
def asset(name: str) -> Response[str]:
    found = ASSETS.get(name) if _NAME.match(name) and name != "index.html" else None
    if found is None:
        raise NotFound(f"No portal file '{name}'")
    return _send(found)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return web.handle(app, event, context, public_resources=PUBLIC)
