"""Loaded by the runner processes the WCU bench starts (``PYTHONPATH=bench/wcu_site``), never by
the gateway itself: every DynamoDB request carries the name of the thread that sent it, so the
bench's proxy can tell the request path (the HTTP server's threads), the work after the answer
(``aigw-after-answer``) and the stream consumers (``aigw-streams``) apart."""

from __future__ import annotations

import threading
from typing import Any

HEADER = "x-aigw-bench-thread"


def _tag(request: Any, **_: Any) -> None:
    request.headers[HEADER] = threading.current_thread().name


def _install() -> None:
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - the runner always has botocore
        return
    create_client = botocore.session.Session.create_client

    def tagged(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, service_name, *args, **kwargs)
        if service_name in ("dynamodb", "dynamodbstreams"):
            client.meta.events.register(f"before-send.{service_name}", _tag)
        return client

    botocore.session.Session.create_client = tagged  # type: ignore[method-assign]


_install()
