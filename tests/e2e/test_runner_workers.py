"""``--workers N``: the runner serves with N processes, like N warm Lambda containers, so calls
run side by side without reading each other's request, and Ctrl-C stops them all."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from aigw_local.dynamodb_local import free_port
from tests.e2e.conftest import start_runner
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion


class SlowUpstream:
    """Answers after a pause and remembers how many calls it held at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> Scripted:
        with self._lock:
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        time.sleep(0.4)
        with self._lock:
            self.in_flight -= 1
        return openai_completion(request)


def test_workers_serve_calls_side_by_side_and_stop_together() -> None:
    slow = SlowUpstream()
    upstream = FakeUpstream(slow).start()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-x"}
    started = start_runner(env, "--workers", "3")
    base = f"http://127.0.0.1:{port}"
    try:
        admin = {"Authorization": f"Bearer {started.keys['admin']}"}
        secrets = {}
        for team in ("red", "blue"):
            assert httpx.post(f"{base}/admin/teams", json={"team_id": team}, headers=admin).status_code == 201
            created = httpx.post(f"{base}/admin/teams/{team}/keys", json={}, headers=admin).json()
            secrets[team] = created["secret"]

        def chat(team: str) -> tuple[str, int, str]:
            reply = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": team}]},
                headers={"Authorization": f"Bearer {secrets[team]}"},
                timeout=30,
            )
            me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {secrets[team]}"}, timeout=30)
            return team, reply.status_code, me.json()["team"]["team_id"]

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(chat, ["red", "blue"] * 3))
        assert [status for _, status, _ in results] == [200] * 6
        assert all(team == seen for team, _, seen in results)  # nobody read another's request
        assert slow.most_at_once >= 2  # more than one process held an upstream call at once
        # Records written by every worker reach the reports through the one stream poller.
        for team in ("red", "blue"):
            assert _report_calls(base, secrets[team], expected=3) == 3
    finally:
        started.stop()
        upstream.stop()
    assert started.process.returncode == 0
    # Every worker went with the parent: the port is free again.
    assert free_port_is(port)


def _report_calls(base: str, secret: str, *, expected: int) -> int:
    """The report's call count once it reaches ``expected`` (or the deadline passes)."""
    deadline = time.monotonic() + 20
    while True:
        reply = httpx.get(f"{base}/reports/usage", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        calls: int = reply.json()["totals"]["calls"]
        if calls >= expected or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


def free_port_is(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
