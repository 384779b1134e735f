"""Lone UTF-16 surrogates in JSON text: ``"\\ud800"`` is valid JSON, yet the string it decodes to
cannot be encoded as UTF-8, so it fails wherever it is written (DynamoDB, a pydantic JSON dump,
an answer's body).

Callers' input that holds one is refused before anything is reserved or sent
(:func:`aigw.web.handle`, naming the field); vendors' output has them replaced by U+FFFD where it
is parsed (:mod:`aigw.providers.upstream`), so an answer that was billed can always be sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LONE = re.compile(r"[\ud800-\udfff]")
# A \uXXXX escape in the surrogate range: only JSON text holding one needs a closer look.
ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def find(value: Any, path: str = "") -> str | None:
    """The dotted path (``messages.0.content``) of the first string or key with a lone
    surrogate, ``""`` for the value itself, or None when there is none."""
    if isinstance(value, str):
        return path if _LONE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _LONE.search(key):
                return where
            found = find(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def scrub(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads``, with lone surrogates in the result replaced (U+FFFD)."""
    value = json.loads(text)
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return scrub(value) if ESCAPE.search(raw) else value
