"""Where a warm chat completion spends its wall time, phase by phase, without HTTP in front:
the runner's own ``Gateway`` in this process, DynamoDB Local and the bench's upstream behind it.

    python bench/phases.py                 # settles after each answer, before the next call
    python bench/phases.py --overlap       # the next call starts while the settle runs

Prints p50 ms of: the whole handler, admission (in memory with a live lease), the vendor call,
the usage record and the lease upkeep written after the answer, and a direct httpx call to the
upstream for comparison.
Numbers for reading bench/RESULTS.md, not a benchmark of their own (docs/bench.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "local"), str(ROOT / "layers/core")]

import httpx  # noqa: E402

from aigw_local import apigw  # noqa: E402
from aigw_local import template as tpl  # noqa: E402
from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table  # noqa: E402
from aigw_local.runner import TABLE_NAME, local_environment, seed_demo  # noqa: E402
from aigw_local.server import Gateway  # noqa: E402
from bench.run import BENCH_PLAN, Processes, start_upstream  # noqa: E402

TIMES: dict[str, list[float]] = {}


def timed[F: Callable[..., Any]](name: str, fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    return wrapper  # type: ignore[return-value]


def request(method: str, path: str, body: object, key: str) -> apigw.HttpRequest:
    headers = [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")]
    return apigw.HttpRequest(method, path, "", headers, json.dumps(body).encode(), "127.0.0.1", "127.0.0.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--overlap", action="store_true", help="do not wait for a call's settle")
    args = parser.parse_args()
    procs, db = Processes(), DynamoDBLocal()
    try:
        upstream = start_upstream(procs)
        db.start()
        os.environ.update({"OPENAI_BASE_URL": upstream + "/v1", "OPENAI_API_KEY": "sk-fake-upstream"})
        template = tpl.load()
        ensure_table(db.endpoint, TABLE_NAME, template)
        os.environ.update(local_environment(template, table_name=TABLE_NAME, endpoint=db.endpoint))
        demo = seed_demo(None, force=True)
        gateway = Gateway(tpl.routes(template))
        gateway.preload()
        gateway.dispatch(request("PUT", "/admin/plans/bench", BENCH_PLAN, demo.admin_key))
        gateway.dispatch(request("PUT", "/admin/teams/demo/plan", {"plan_id": "bench"}, demo.admin_key))

        from aigw import invocation
        from aigw.billing import held_leases
        from aigw.providers import openai
        from aigw.usage import records

        invocation.open_meter = timed("admission", invocation.open_meter)
        openai.OpenAIProvider.complete = timed("vendor call", openai.OpenAIProvider.complete)  # type: ignore[method-assign]
        records.record = timed("usage record (after)", records.record)
        held_leases.maintain = timed("lease upkeep (after)", held_leases.maintain)
        gateway._dispatch = timed("handler", gateway._dispatch)  # type: ignore[method-assign]
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say something."}]}
        chat = request("POST", "/v1/chat/completions", {**body, "max_tokens": 16}, demo.team_key)
        for _ in range(100):
            gateway.dispatch(chat)
        TIMES.clear()
        with httpx.Client() as client:
            for _ in range(args.calls):
                direct = timed("direct upstream call", client.post)
                direct(upstream + "/v1/chat/completions", json={**body, "model": "gpt-4o-mini"})
        for _ in range(args.calls):
            if args.overlap:
                gateway.serve(chat, lambda answer: None)
            else:
                gateway.dispatch(chat)
        gateway.drain()
        for name, values in TIMES.items():
            print(f"{name:22s} p50 {statistics.median(values):6.2f} ms")
    finally:
        procs.stop_all()
        db.stop()


if __name__ == "__main__":
    main()
