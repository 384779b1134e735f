"""Token counts where a provider reports none (a stream cut short, a vendor without usage
events) and to size reservations before a call.

tiktoken is used when its ``o200k_base`` BPE file is already on disk (``TIKTOKEN_CACHE_DIR``,
see docs/providers.md): it downloads encodings from the internet at first use, which a
gateway must not depend on (and which tests must never attempt). Without the file, the count
is roughly 4 characters a token, as OpenAI documents. Either way the usage record says
``usage_source: estimate``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from aigw.chat import ChatMessage

_PER_MESSAGE_OVERHEAD = 4
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


class _Encoder(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


@functools.cache
def _tiktoken() -> _Encoder | None:
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    # tiktoken names its cache files after the SHA-1 of the source URL.
    if not cache_dir or not (Path(cache_dir) / hashlib.sha1(_O200K_URL.encode()).hexdigest()).is_file():  # noqa: S324
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    encoder: _Encoder = tiktoken.get_encoding("o200k_base")
    return encoder


def method() -> str:
    return "tiktoken" if _tiktoken() is not None else "chars/4"


def estimate_text(text: str) -> int:
    if not text:
        return 0
    encoder = _tiktoken()
    if encoder is not None:
        return len(encoder.encode(text, disallowed_special=()))
    return (len(text) + 3) // 4


def estimate_messages(messages: list[ChatMessage]) -> int:
    return sum(estimate_text(m.text()) + _PER_MESSAGE_OVERHEAD for m in messages) + 2
