"""Call the real Lambda handlers with API Gateway events shaped like the samples in events/."""

from __future__ import annotations

import base64
import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aigw.streaming import StreamingResponse
from aigw_local import template as tpl
from aigw_local.apigw import LambdaContext
from aigw_local.server import Handler, load_handler

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


@functools.cache
def _routes() -> list[tpl.Route]:
    return tpl.routes(tpl.load())


@functools.cache
def _handler(logical_id: str) -> Handler:
    spec = next(r.function for r in _routes() if r.function.logical_id == logical_id)
    return load_handler(spec)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def build_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    raw_body: bytes | str | None = None,
) -> tuple[dict[str, Any], tpl.Route]:
    path, _, query = path.partition("?")
    for route in _routes():
        params = route.match(method, path)
        if params is not None:
            break
    else:
        raise LookupError(f"template.yaml has no route {method} {path}")
    event = copy.deepcopy(sample_event("apigw/chat-completions.json"))
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    event.update(
        resource=route.path,
        path=path,
        httpMethod=method,
        headers=all_headers,
        multiValueHeaders={k: [v] for k, v in all_headers.items()},
        pathParameters=params or None,
    )
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        event["queryStringParameters"] = dict(pairs)
        event["multiValueQueryStringParameters"] = {k: [v for n, v in pairs if n == k] for k, _ in pairs}
    event["requestContext"].update(resourcePath=route.path, httpMethod=method, path=f"/dev{path}")
    event["requestContext"]["requestId"] = f"req-{id(event):x}"
    if isinstance(raw_body, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw_body).decode(), True
    elif raw_body is not None:
        event["body"] = raw_body
    else:
        event["body"] = None if body is None else json.dumps(body)
    return event, route


def invoke_handler(event: dict[str, Any], route: tpl.Route) -> Any:
    """The route's handler's own answer: a proxy-result dict, or a stream not yet read."""
    return _handler(route.function.logical_id)(event, LambdaContext(route.function.logical_id, 30))


def invoke_event(event: dict[str, Any], route: tpl.Route) -> Reply:
    result = invoke_handler(event, route)
    if isinstance(result, StreamingResponse):
        # A streamed answer, read to its end as a client would.
        try:
            streamed = b"".join(result.body).decode()
        finally:
            result.close()
        return Reply(result.status, dict(result.headers), streamed)
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers[k] = ", ".join(str(v) for v in values)
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return Reply(result["statusCode"], headers, body)


def call(method: str, path: str, **kwargs: Any) -> Reply:
    event, route = build_event(method, path, **kwargs)
    return invoke_event(event, route)
