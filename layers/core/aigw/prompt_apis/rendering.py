"""Prompt templates: ``{{name}}`` placeholders filled in one pass.

Substitution is a single ``re.sub`` over the template: a value is inserted as text and never
scanned again, so a caller who sends ``"{{secret}}"`` or ``"}} {{"`` gets those characters in
the prompt, not another variable. Values stay inside the message they were placed in; a
variable cannot add messages or change roles because messages are built by the gateway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aigw.chat import ChatMessage
from aigw.prompt_apis.model import Prompt

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")


def placeholders(template: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def prompt_placeholders(prompt: Prompt) -> list[str]:
    return placeholders((prompt.system or "") + "\n" + prompt.user)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill placeholders; one absent from ``variables`` (an optional input) becomes empty."""
    return PLACEHOLDER.sub(lambda match: _as_text(variables.get(match.group(1))), template)


def render_messages(prompt: Prompt, variables: Mapping[str, Any]) -> list[ChatMessage]:
    messages = []
    if prompt.system:
        messages.append(ChatMessage(role="system", content=render(prompt.system, variables)))
    messages.append(ChatMessage(role="user", content=render(prompt.user, variables)))
    return messages
