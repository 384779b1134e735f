"""Run a coroutine to the end from synchronous test code, whatever loop the thread has.

pympp's client is async. Playwright's sync API leaves an event loop running in the test
worker's main thread once a browser test has run there, and ``asyncio.run`` refuses to start a
second loop in that thread; a thread of its own always has none."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
