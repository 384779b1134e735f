"""Shared fixtures: a clean process-wide state for every test (settings, caches, clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aigw import keys, providers, table
from aigw.config import settings


def reset_core() -> None:
    settings.cache_clear()
    table.reset()
    keys.clear_cache()
    providers.reset()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY_PARAMETER", "DYNAMODB_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("TABLE_NAME", "aigw-test")
    reset_core()
    yield
    reset_core()
