"""The check at the end of a whole test run (tests/helpers/aws_calls.py): a function that starts
or stops making an AWS call fails the run and says which, so its grants are revisited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aigw_local import template as tpl

SUITE = "tests/unit/test_me_api.py"  # a handler's own tests stand in for the whole suites


def _run(snapshot: Path, *args: str, write: bool = False) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIGW_AWS_CALLS_SNAPSHOT": str(snapshot),
        "AIGW_AWS_CALLS_SUITES": SUITE,
        "AIGW_WRITE_AWS_CALLS": "1" if write else "",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=tpl.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_run_fails_when_a_function_makes_a_call_the_record_does_not_have(tmp_path: Path) -> None:
    snapshot = tmp_path / "aws_calls.json"
    written = _run(snapshot, write=True)
    assert written.returncode == 0, written.stdout[-2000:]
    recorded = json.loads(snapshot.read_text())
    assert "dynamodb:Query" in recorded["MeFunction"]
    assert _run(snapshot).returncode == 0  # the same calls: nothing to say

    recorded["MeFunction"].remove("dynamodb:Query")
    recorded["MeFunction"].append("dynamodb:Scan")
    snapshot.write_text(json.dumps(recorded))
    changed = _run(snapshot)
    assert changed.returncode == 1
    assert "MeFunction: now calls ['dynamodb:Query']; no longer calls ['dynamodb:Scan']" in changed.stdout
    assert "make aws-calls" in changed.stdout


def test_a_partial_run_checks_nothing(tmp_path: Path) -> None:
    snapshot = tmp_path / "aws_calls.json"
    snapshot.write_text(json.dumps({"MeFunction": ["dynamodb:Scan"]}))
    partial = _run(snapshot, "-k", "keys")
    assert partial.returncode == 0, partial.stdout[-2000:]
