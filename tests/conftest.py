"""Shared fixtures: a clean process-wide state for every test (settings, caches, clients)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aigw import catalog, keys, providers, table
from aigw.config import settings
from aigw_local.runner import PASSED_THROUGH


def reset_core() -> None:
    settings.cache_clear()
    table.reset()
    keys.clear_cache()
    providers.reset()
    catalog.clear_cache()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name == "DYNAMODB_ENDPOINT" or name.startswith(PASSED_THROUGH):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("TABLE_NAME", "aigw-test")
    # Retries back off for real in production; tests that look at the pauses patch clock.sleep.
    monkeypatch.setenv("UPSTREAM_RETRY_BASE_SECONDS", "0")
    reset_core()
    yield
    reset_core()
