"""Settings read once from the environment (Lambda configuration, or the local runner)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _opt(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Settings:
    table_name: str
    region: str
    dynamodb_endpoint: str | None
    stage: str
    key_cache_seconds: int
    max_body_bytes: int
    usage_retention_days: int
    openai_base_url: str
    openai_api_key: str | None
    openai_api_key_parameter: str | None
    upstream_timeout_seconds: int
    upstream_max_retries: int
    upstream_retry_base_seconds: float
    upstream_retry_max_wait_seconds: float
    catalog_cache_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table_name=os.environ.get("TABLE_NAME", "aigw-local"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            dynamodb_endpoint=_opt("DYNAMODB_ENDPOINT"),
            stage=os.environ.get("STAGE", "dev"),
            key_cache_seconds=_int("KEY_CACHE_SECONDS", 5),
            max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
            usage_retention_days=_int("USAGE_RETENTION_DAYS", 400),
            openai_base_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/"),
            openai_api_key=_opt("OPENAI_API_KEY"),
            openai_api_key_parameter=_opt("OPENAI_API_KEY_PARAMETER"),
            upstream_timeout_seconds=_int("UPSTREAM_TIMEOUT_SECONDS", 60),
            upstream_max_retries=_int("UPSTREAM_MAX_RETRIES", 2),
            upstream_retry_base_seconds=_float("UPSTREAM_RETRY_BASE_SECONDS", 0.5),
            upstream_retry_max_wait_seconds=_float("UPSTREAM_RETRY_MAX_WAIT_SECONDS", 10.0),
            catalog_cache_seconds=_int("CATALOG_CACHE_SECONDS", 30),
        )


@functools.cache
def settings() -> Settings:
    """The process-wide settings; tests call ``settings.cache_clear()`` after changing the env."""
    return Settings.from_env()
