"""Server-Sent Events: reading a vendor's stream and writing OpenAI's.

The reader follows the WHATWG event-stream rules that vendors rely on: ``event:`` and
``data:`` fields, multi-line data joined by newlines, comments (``:``) ignored, a blank line
ends an event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"
CONTENT_TYPE = "text/event-stream"


@dataclass(frozen=True)
class Event:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of an event stream (line endings already stripped)."""
    name = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield Event(name or "message", "\n".join(data))


def encode(payload: BaseModel | dict[str, Any], event: str | None = None) -> bytes:
    """One event, with a JSON payload, as bytes on the wire."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_none=True)
    else:
        body = json.dumps(payload, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {body}\n\n".encode()
