from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aigw import cli, keys


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
