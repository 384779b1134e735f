"""The local runner as a user starts it (``python -m aigw_local``), in its own process, with a
fake OpenAI upstream on loopback; tests drive it with the official SDKs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from aigw_local.dynamodb_local import free_port
from tests.helpers.fake_upstream import FakeUpstream, Recorded, Scripted, openai_completion
from tests.helpers.fake_vendors import VendorServer


@dataclass
class Runner:
    base_url: str
    admin_key: str
    team_key: str
    upstream: FakeUpstream
    output: list[str]
    vendors: VendorServer
    dynamodb_endpoint: str


def _respond(request: Recorded) -> Scripted:
    return openai_completion(request, content="Hello from the fake upstream")


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    upstream = FakeUpstream(_respond).start()
    vendors = VendorServer().start()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-fake-upstream",
        "ANTHROPIC_BASE_URL": vendors.url + "/anthropic",
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "GROQ_BASE_URL": vendors.url + "/groq/v1",
        "GROQ_API_KEY": "gsk-fake",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    deadline = time.monotonic() + 90
    keys: dict[str, str] = {}
    dynamodb_endpoint = ""
    assert process.stdout is not None
    while len(keys) < 2:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("local runner exited before it was ready:\n" + "".join(output))
        output.append(line)
        match = re.match(r"demo (admin|team) key:\s+(\S+)", line)
        if match:
            keys[match.group(1)] = match.group(2)
        started = re.match(r"starting DynamoDB Local on (\S+)", line)
        if started:
            dynamodb_endpoint = started.group(1)
        if time.monotonic() > deadline:
            raise RuntimeError("local runner not ready in 90 s:\n" + "".join(output))
    yield Runner(
        f"http://127.0.0.1:{port}", keys["admin"], keys["team"], upstream, output, vendors, dynamodb_endpoint
    )
    process.send_signal(signal.SIGINT)
    try:
        rest, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        rest, _ = process.communicate()
    output.append(rest)
    upstream.stop()
    vendors.stop()
