"""Only the cold-start part of ``make bench``: every handler imported in a fresh process and
invoked once, as bench/run.py measures it (same code, same layer trees), without the load test.

    python bench/cold.py                  # shipped layer (bytecode), median of 7 per handler
    python bench/cold.py --runs 3 --mode bytecode --mode "source only"
    python bench/cold.py --only InvokeFunction --only MessagesFunction

Prints one row per handler: import wall/CPU ms, first call wall/CPU ms, and their sums.
Numbers, not assertions: see docs/bench.md for how to read them on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "local"), str(ROOT / "layers/core")]

from aigw_local import template as tpl  # noqa: E402
from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table  # noqa: E402
from aigw_local.runner import TABLE_NAME, local_environment, seed_demo  # noqa: E402
from bench.run import WORK, ColdStart, cold_starts  # noqa: E402


def render(rows: list[ColdStart]) -> str:
    lines = [
        "| function | layer | first request | import ms | import CPU ms | first call ms | "
        "first call CPU ms | import+first CPU ms | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        lines.append(
            f"| {c.function} | {c.mode} | {c.route} | {c.import_ms:.0f} | {c.import_cpu_ms:.0f} | "
            f"{c.first_ms:.0f} | {c.first_cpu_ms:.0f} | {c.import_cpu_ms + c.first_cpu_ms:.0f} | {c.status} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cold.py", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per handler (median)")
    parser.add_argument("--mode", action="append", choices=["bytecode", "source only"])
    parser.add_argument("--only", action="append", help="logical id of a function (repeatable)")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    template = tpl.load()
    db = DynamoDBLocal()
    db.start()
    try:
        ensure_table(db.endpoint, TABLE_NAME, template)
        os.environ.update(local_environment(template, table_name=TABLE_NAME, endpoint=db.endpoint))
        admin_key = seed_demo(None).admin_key
        rows = cold_starts(db.endpoint, admin_key, args.runs, modes=args.mode or ["bytecode"], only=args.only)
    finally:
        db.stop()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after the run: {load}; median of {args.runs} processes per handler")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
