from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aigw import cli, cli_common, keys
from tests.helpers.fake_upstream import FakeUpstream, Scripted


def test_bootstrap_creates_a_working_admin_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bootstrap", "--table", "aigw-test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    key = keys.authenticate(out["secret"])
    assert key.is_admin
    assert key.team_id == "admin"
    # A second bootstrap adds a second admin key instead of failing on the existing team.
    assert cli.main(["bootstrap", "--table", "aigw-test", "--json"]) == 0
    assert len(keys.list_keys("admin")) == 2


@pytest.mark.parametrize("value", ["30d", "12h", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00"])
def test_expiry_accepts_durations_and_iso_times(value: str) -> None:
    parsed = datetime.fromisoformat(cli._expiry(value))
    assert parsed.tzinfo is not None
    assert parsed > datetime.now(UTC)


def test_expiry_rejects_nonsense() -> None:
    with pytest.raises(cli.CliError):
        cli._expiry("soon")


def test_commands_without_admin_key_fail_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--admin-key", "", "teams", "list"]) == 1
    assert "AIGW_ADMIN_KEY" in capsys.readouterr().err


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def _parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def test_every_command_and_option_has_help_text() -> None:
    top = cli.build_parser()
    text = top.format_help()
    for variable in ("AIGW_URL", "AIGW_ADMIN_KEY", "AIGW_API_KEY", "http://127.0.0.1:3000"):
        assert variable in text
    leaves = list(_leaf_parsers(top))
    assert ("teams", "show") in leaves
    assert len(leaves) > 30
    undocumented = []
    for path in leaves:
        parser = _parser_at(path)
        if not (parser.description or "").strip():
            undocumented.append(" ".join(path))
        for action in parser._actions:
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                undocumented.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
        if path != ("bootstrap",):  # the one command that reaches DynamoDB instead of the gateway
            # The connection options are explained with their environment variable and default.
            assert "$AIGW_URL" in parser.format_help(), path
    assert undocumented == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"aigw \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_connection_options_work_before_and_after_any_command() -> None:
    """``aigw apis show X --key K`` as well as ``aigw --key K apis show X`` (and so for every
    command): the options a user reaches for are accepted in the same places."""
    for path in _leaf_parsers(cli.build_parser()):
        if path == ("bootstrap",):
            continue  # it reaches DynamoDB, not the gateway
        positional = [
            "1"
            for a in _parser_at(path)._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and a.nargs != "*"
        ]
        required = []
        for action in _parser_at(path)._actions:
            if action.required and action.option_strings:
                value = action.choices[0] if action.choices else "2026-01-01" if action.dest == "day" else "x"
                required += [action.option_strings[0], str(value)]
        tail = [*positional, *required]
        after = cli.build_parser().parse_args(
            [*path, *tail, "--url", "http://u", "--key", "K", "--admin-key", "A"]
        )
        before = cli.build_parser().parse_args(
            ["--url", "http://u", "--key", "K", "--admin-key", "A", *path, *tail]
        )
        for args in (after, before):
            assert (args.url, args.key, args.admin_key) == ("http://u", "K", "A"), path
        assert cli.build_parser().parse_args([*path, *tail, "--json"]).json is True, path


def test_display_uses_iso_dates_and_plain_lists() -> None:
    row = {
        "key_id": "key_1",
        "created_at": 1_764_000_000,
        "expires_at": None,
        "allowed_models": ["openai/*", "mock/echo"],
        "tokens": 1_764_000_000,
    }
    text = cli_common.table([row], ["key_id", "created_at", "expires_at", "allowed_models", "tokens"])
    assert "2025-11-24T16:00:00Z" in text
    assert "openai/*, mock/echo" in text
    assert "[" not in text
    assert "None" not in text
    assert "1764000000" in text  # a count that merely looks like a time stays a number


def test_a_closed_pipe_ends_quietly() -> None:
    """``aigw teams list | head``: when the reader goes away, no BrokenPipeError traceback."""
    teams = [{"team_id": f"team-{n}", "name": f"Team {n}", "created_at": 1_764_000_000} for n in range(3000)]
    gateway = FakeUpstream(lambda _: Scripted(body={"data": teams})).start()
    read, write = os.pipe()
    os.close(read)  # the reader is gone before aigw writes anything
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "aigw.cli",
                "--url",
                gateway.url,
                "--admin-key",
                "sk-aigw-x",
                "teams",
                "list",
            ],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
        gateway.stop()
    assert [r.path for r in gateway.requests] == ["/admin/teams"]
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.returncode != 0


def test_bootstrap_without_a_reachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9 of loopback.
    assert cli.main(["bootstrap", "--endpoint", "http://127.0.0.1:9", "--table", "aigw-local"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("aigw: cannot reach DynamoDB at http://127.0.0.1:9")


def test_bootstrap_without_aws_credentials_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DYNAMODB_ENDPOINT"}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    done = subprocess.run(
        [sys.executable, "-m", "aigw.cli", "bootstrap", "--table", "aigw-dev"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("aigw: no AWS credentials: ")
    assert done.stderr.count("\n") == 1
    assert "--endpoint" in done.stderr


def test_command_modules_do_not_import_the_cli_that_imports_them() -> None:
    """aigw/cli.py builds the parser from aigw/cli_<area>.py; those share aigw/cli_common.py only."""
    import ast

    core = Path(cli.__file__).parent
    for module in sorted(core.glob("cli_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        names = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        assert "aigw.cli" not in imported, module.name
        assert not ({"cli"} & names and "aigw" in imported), module.name
