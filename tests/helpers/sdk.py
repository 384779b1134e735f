"""The official openai SDK, its HTTP routed into the real Lambda handlers (no server): unit
tests then see a 402 or a 429 exactly as an SDK user does (exception class, ``code``,
``message``, headers), on moto."""

from __future__ import annotations

import httpx
import openai

from tests.helpers.apigw import call

BASE_URL = "https://gw.example/v1"


def _send(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if request.url.query:
        path = f"{path}?{request.url.query.decode()}"
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    reply = call(request.method, path, raw_body=request.content.decode() or None, headers=headers)
    return httpx.Response(reply.status, headers=reply.headers, content=reply.body.encode())


def openai_client(key: str) -> openai.OpenAI:
    transport = httpx.MockTransport(_send)
    return openai.OpenAI(
        api_key=key, base_url=BASE_URL, max_retries=0, http_client=httpx.Client(transport=transport)
    )


def refusal(client: openai.OpenAI, **request: object) -> openai.APIStatusError:
    """The error the SDK raises for one chat completion that must be refused."""
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], **request}
    try:
        client.chat.completions.create(**body)  # type: ignore[call-overload]
    except openai.APIStatusError as exc:
        return exc
    raise AssertionError("the call was not refused")
