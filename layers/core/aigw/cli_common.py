"""What every ``aigw`` command shares: the options, the HTTP client, and how answers are printed.

Each area's commands live in their own module (``aigw/cli_<area>.py``) and import only this one;
``aigw/cli.py`` builds the parser from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:3000"
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Fields holding epoch seconds in the gateway's answers; shown as ISO 8601 UTC.
_TIME_FIELDS = re.compile(r"(^|_)(at|time|until|start|end)$|^(created|updated|expires|sunset)(_at)?$")
_EPOCH_RANGE = (946_684_800, 32_503_680_000)  # 2000-01-01 .. 3000-01-01


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


# ---- options ----------------------------------------------------------------------------------

URL_HELP = f"gateway base URL (default: $AIGW_URL, else {DEFAULT_URL})"
ADMIN_KEY_HELP = "admin API key (default: $AIGW_ADMIN_KEY)"
KEY_HELP = (
    "API key to call with, a team's or an admin's (default: $AIGW_API_KEY, else the admin key); "
    "used by the commands a team may run: apis, reports"
)
JSON_HELP = "print the gateway's JSON answer instead of text"


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--admin-key``, ``--key`` on the top-level parser, where their defaults live."""
    parser.add_argument("--url", default=os.environ.get("AIGW_URL") or DEFAULT_URL, help=URL_HELP)
    parser.add_argument("--admin-key", default=os.environ.get("AIGW_ADMIN_KEY"), help=ADMIN_KEY_HELP)
    parser.add_argument("--key", default=os.environ.get("AIGW_API_KEY"), help=KEY_HELP)
    parser.set_defaults(json=False)


def add_common_options(parser: argparse.ArgumentParser, *, as_json: bool = True) -> None:
    """The same options, accepted after any subcommand too (``aigw apis show X --key K``).

    They are SUPPRESSed here: given after the subcommand they override, otherwise the
    top-level value (or its environment default) stays."""
    parser.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
    parser.add_argument("--admin-key", default=argparse.SUPPRESS, help=ADMIN_KEY_HELP)
    parser.add_argument("--key", default=argparse.SUPPRESS, help=KEY_HELP)
    if as_json:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)


def subcommands(parser: argparse.ArgumentParser, title: str) -> Any:
    """A subcommand group whose commands get the common options and a help line each."""
    add_common_options(parser, as_json=False)
    return parser.add_subparsers(dest="action", required=True, title=title, metavar="COMMAND")


def command(
    group: Any, name: str, help_text: str, *, as_json: bool = True, **kwargs: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text, **kwargs)
    add_common_options(parser, as_json=as_json)
    return parser


# ---- the gateway ------------------------------------------------------------------------------


class Client:
    """The gateway's HTTP API with one key; errors become :class:`CliError` lines."""

    def __init__(self, url: str, key: str | None, *, missing: str) -> None:
        if not key:
            raise CliError(missing)
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.request(method, path, json=body)
        try:
            return response.json() if response.content else {}
        except ValueError as exc:
            raise CliError(
                f"the gateway answered {response.status_code} with a body that is not JSON"
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise CliError(f"{response.status_code}: {_problem_detail(response)}")
        return response


def _problem_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if not isinstance(data, dict):
        return response.text.strip()
    error = data.get("error")
    message = data.get("detail") or (error.get("message") if isinstance(error, dict) else None)
    return str(message or response.text.strip())


def admin_client(args: argparse.Namespace) -> Client:
    return Client(
        args.url,
        args.admin_key,
        missing="no admin key: pass --admin-key or set AIGW_ADMIN_KEY (see 'aigw bootstrap')",
    )


def key_client(args: argparse.Namespace) -> Client:
    """For commands a team key may run: ``--key``/``AIGW_API_KEY``, else the admin key."""
    return Client(
        args.url,
        args.key or args.admin_key,
        missing="no API key: pass --key or set AIGW_API_KEY (a team's key), or AIGW_ADMIN_KEY",
    )


# ---- input --------------------------------------------------------------------------------------


def expiry(value: str) -> str:
    """``30d``/``12h`` from now, or an ISO 8601 timestamp, as ISO 8601 UTC."""
    match = _DURATION.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (datetime.now(UTC) + delta).isoformat()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CliError(f"--expires: '{value}' is neither a duration like 30d nor an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def comma_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


# ---- output ---------------------------------------------------------------------------------------


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def display(value: Any, field: str = "") -> str:
    """One value as a person reads it: times as ISO dates, lists as comma-separated, no reprs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if (
        isinstance(value, (int, float))
        and _TIME_FIELDS.search(field)
        and _EPOCH_RANGE[0] <= value < _EPOCH_RANGE[1]
    ):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(display(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def table(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    shown = [[display(row.get(c), c) for c in columns] for row in rows]
    if not shown:
        return "(none)"
    widths = [max(len(c), *(len(r[i]) for r in shown)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    return "\n".join(lines)


def fields(data: Mapping[str, Any], names: Iterable[str] | None = None) -> str:
    """``name: value`` lines, for one object."""
    keys = list(names) if names is not None else list(data)
    width = max((len(k) for k in keys), default=0)
    return "\n".join(f"{k.ljust(width)}  {display(data.get(k), k)}" for k in keys if k in data)


def emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2) if as_json else text)  # noqa: T201 - the CLI's output


def fail(message: str) -> None:
    print(f"aigw: {message}", file=sys.stderr)  # noqa: T201 - the CLI's error line
