"""What moving the report aggregates onto the table stream costs and saves (docs/decisions/0011).

``python bench/report_aggregates.py`` measures, against DynamoDB Local:

1. the settle transaction as it was (billing counters Update + usage record Put + the report
   aggregate Updates of the record, 10 items) and as it is (2 items): wall time per
   TransactWriteItems (median, the two shapes interleaved so machine noise hits both alike) and
   DynamoDB Local's own CPU time per transaction (the JVM's utime+stime over a block of each);
2. the stream lag through the local runner: a chat completion answered -> its aggregates
   updated by the runner's stream poller and ReportAggregatorFunction (median and max).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT / "local")]

from aigw.usage.records import UsageRecord  # noqa: E402
from aigw.usage.reports import contributions  # noqa: E402
from aigw_local.dynamodb_local import DynamoDBLocal, client, ensure_table, free_port  # noqa: E402

TABLE = "aigw-bench-settle"


def _jvm_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle_items(i: int, *, with_aggregates: bool) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    record = UsageRecord(
        request_id=f"req-{with_aggregates}-{i}",
        team_id="bench",
        key_id="key_bench",
        model="openai/gpt-4o-mini",
        provider="openai",
        route="/v1/chat/completions",
        status=200,
        prompt_tokens=12,
        completion_tokens=20,
        cost_micro_usd=14,
        created_at_ms=now_ms,
    )
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "TEAM#bench"}, "sk": {"S": "BILLING"}},
                "UpdateExpression": "ADD tok_held :dt, tok_used :t, spend_held :dc, spend_used :c",
                "ExpressionAttributeValues": {
                    ":dt": {"N": "-100"},
                    ":t": {"N": "32"},
                    ":dc": {"N": "-50"},
                    ":c": {"N": "14"},
                },
            }
        },
        {
            "Put": {
                "TableName": TABLE,
                "Item": {
                    "pk": {"S": f"USAGE#bench#{datetime.now(UTC):%Y-%m-%d}"},
                    "sk": {"S": f"{now_ms:014d}#{record.request_id}"},
                    "type": {"S": "usage"},
                    "pad": {"S": "x" * 300},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]
    if with_aggregates:
        for part in contributions(record):
            ((kind, body),) = part.update().items()
            items.append({kind: {"TableName": TABLE, **body}})
    return items


def settle_transactions(rounds: int) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with DynamoDBLocal() as db:
        ensure_table(db.endpoint, TABLE)
        ddb = client(db.endpoint)
        assert db._process is not None
        pid = db._process.pid
        for i in range(200):  # warm the JVM up
            ddb.transact_write_items(TransactItems=_settle_items(-i - 1, with_aggregates=i % 2 == 0))
        wall: dict[bool, list[float]] = {True: [], False: []}
        for i in range(rounds):
            for shape in (True, False):
                items = _settle_items(i, with_aggregates=shape)
                started = time.perf_counter()
                ddb.transact_write_items(TransactItems=items)
                wall[shape].append((time.perf_counter() - started) * 1000)
        cpu: dict[bool, float] = {}
        for shape in (True, False):
            before = _jvm_cpu_seconds(pid)
            for i in range(rounds):
                ddb.transact_write_items(TransactItems=_settle_items(rounds + i, with_aggregates=shape))
            cpu[shape] = (_jvm_cpu_seconds(pid) - before) * 1000 / rounds
    for shape, label in (
        (True, "before: 10 items (counters + record + 8 aggregates)"),
        (False, "after:   2 items (counters + record)"),
    ):
        print(
            f"settle {label}: wall median {statistics.median(wall[shape]):.2f} ms "
            f"(p90 {statistics.quantiles(wall[shape], n=10)[-1]:.2f} ms), "
            f"DynamoDB Local CPU {cpu[shape]:.2f} ms per transaction ({rounds} each)"
        )


def stream_lag(calls: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'core'}:{ROOT / 'local'}"},
    )
    try:
        output = ""
        assert process.stdout is not None
        while "demo team key:" not in output:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("runner exited: " + output)
            output += line
        endpoint = re.search(r"DynamoDB Local on (\S+) ", output)
        team_key = re.search(r"demo team key:\s+(\S+)", output)
        assert endpoint
        assert team_key
        ddb = client(endpoint.group(1))
        base = f"http://127.0.0.1:{port}"
        body = {"model": "mock/echo", "messages": [{"role": "user", "content": "lag?"}]}
        headers = {"Authorization": f"Bearer {team_key.group(1)}"}

        def counted() -> int:
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            item = ddb.get_item(
                TableName="aigw-local",
                Key={"pk": {"S": "AGG#demo"}, "sk": {"S": f"D#all#{day}"}},
                ConsistentRead=True,
            ).get("Item")
            return int(item["calls"]["N"]) if item else 0

        lags = []
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for _ in range(3):  # warm
                http.post("/v1/chat/completions", json=body).raise_for_status()
            deadline = time.monotonic() + 10
            while counted() < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            for i in range(calls):
                http.post("/v1/chat/completions", json=body).raise_for_status()
                answered = time.perf_counter()
                while counted() < 4 + i:
                    time.sleep(0.002)
                lags.append((time.perf_counter() - answered) * 1000)
                time.sleep(0.05)
        print(
            f"stream lag (answer -> aggregates updated, runner poll interval 0.1 s, {calls} calls): "
            f"median {statistics.median(lags):.0f} ms, max {max(lags):.0f} ms"
        )
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    settle_transactions(args.rounds)
    stream_lag(args.calls)


if __name__ == "__main__":
    main()
