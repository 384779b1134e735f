"""The ``aigw apis`` CLI's own behaviour (its HTTP calls are covered end to end in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw import cli


def test_apis_commands_need_a_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGW_API_KEY", raising=False)
    assert cli.main(["--admin-key", "", "apis", "catalog"]) == 1
    assert "AIGW_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["{not json", "@/nonexistent/spec.json"])
def test_unreadable_spec_is_reported(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    assert cli.main(["--admin-key", "sk-aigw-x", "apis", "create", "--spec", spec]) == 1
    assert "--spec: not readable JSON" in capsys.readouterr().err


def test_unreachable_gateway_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"slug": "x"}', encoding="utf-8")
    # Port 9 on loopback (discard) has no listener here: the CLI must say so, not crash.
    args = ["--url", "http://127.0.0.1:9", "--admin-key", "sk-aigw-x", "apis", "create", "--spec", f"@{spec}"]
    assert cli.main(args) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err
