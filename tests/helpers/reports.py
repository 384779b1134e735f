"""The reports route with a query string, for tests."""

from __future__ import annotations

from urllib.parse import urlencode


def usage_path(query: dict[str, str]) -> str:
    return "/reports/usage?" + urlencode(query)
