"""`python -m aigw_local --dynamodb-endpoint URL` uses a DynamoDB that is already running
(the bench puts a counting proxy there) instead of starting its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from aigw_local.dynamodb_local import DynamoDBLocal, client, free_port
from aigw_local.runner import TABLE_NAME
from tests.conftest import BILLING_ENV


def test_runner_serves_from_the_given_dynamodb(dynamodb_local: DynamoDBLocal) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aigw_local",
            "--in-memory",
            "--quiet",
            "--port",
            str(port),
            "--dynamodb-endpoint",
            dynamodb_local.endpoint,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a user starts it: none of this test session's billing settings (DEFAULT_PLAN...).
        env={**{k: v for k, v in os.environ.items() if k not in BILLING_ENV}, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        output = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "runner exited:\n" + "".join(output)
            output.append(line)
            if line.startswith("demo team key:"):
                break
        text = "".join(output)
        assert "starting DynamoDB Local" not in text
        team_key = re.search(r"demo team key:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {team_key}"},
            timeout=30,
        )
        assert reply.status_code == 200
        table = client(dynamodb_local.endpoint)
        usage: list[object] = []
        settled_by = time.monotonic() + 15  # the record is written after the answer
        while not usage and time.monotonic() < settled_by:
            usage = table.scan(
                TableName=TABLE_NAME,
                FilterExpression="begins_with(pk, :p)",
                ExpressionAttributeValues={":p": {"S": "USAGE#demo#"}},
            )["Items"]
            time.sleep(0.1)
        assert len(usage) == 1  # the call was metered in the given database
    finally:
        process.terminate()
        process.wait(timeout=30)
