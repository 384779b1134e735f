"""Cold starts as Lambda runs them (bench/lambda_init.py): for every function of template.yaml,
fresh processes started as Lambda starts that function (streaming ones through the wrapper and
the aigw runtime loop) against a Runtime API on loopback, with the layer as the Makefile builds
it, DynamoDB Local behind them.

    python bench/cold.py                  # shipped layer (bytecode), median of 7 per function
    python bench/cold.py --runs 3 --mode bytecode --mode "source only"
    python bench/cold.py --only InvokeFunction --only MessagesFunction

Prints one row per function: init (exec to the first /next: interpreter, runtime loop, handler
module) wall and CPU ms, then the first invocation's, and their sum. Numbers, not assertions:
see docs/cold-start.md for how to read them on a shared machine.
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
from bench.lambda_init import LambdaColdStart, measure  # noqa: E402
from bench.run import WORK, _sample_event, layer_trees  # noqa: E402

TARGET_INIT_CPU_MS = 250.0


def render(rows: list[LambdaColdStart]) -> str:
    lines = [
        "| function | runtime | layer | first request | init ms | init CPU ms | init CPU ms (least) | "
        "first invocation ms | first invocation CPU ms | init+first CPU ms | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        lines.append(
            f"| {c.function} | {c.runtime} | {c.mode} | {c.route} | {c.init_ms:.0f} | {c.init_cpu_ms:.0f} | "
            f"{c.init_cpu_min_ms:.0f} | {c.first_ms:.0f} | {c.first_cpu_ms:.0f} | {c.total_cpu_ms:.0f} | "
            f"{c.status} |"
        )
    worst = max(rows, key=lambda c: c.init_cpu_ms, default=None)
    if worst is not None:
        verdict = "met" if worst.init_cpu_ms <= TARGET_INIT_CPU_MS else "not met"
        lines.append(
            f"\nTarget: whole init at most {TARGET_INIT_CPU_MS:g} ms of CPU (median): worst "
            f"{worst.function} {worst.init_cpu_ms:.0f} ms ({verdict}; least of its runs "
            f"{worst.init_cpu_min_ms:.0f} ms). Run it on an idle machine: CPU time grows with contention."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cold.py", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per function (median)")
    parser.add_argument("--mode", action="append", choices=["bytecode", "source only"])
    parser.add_argument("--only", action="append", help="logical id of a function (repeatable)")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    template = tpl.load()
    routes = tpl.routes(template)
    db = DynamoDBLocal()
    db.start()
    rows: list[LambdaColdStart] = []
    try:
        ensure_table(db.endpoint, TABLE_NAME, template)
        env = local_environment(template, table_name=TABLE_NAME, endpoint=db.endpoint)
        os.environ.update(env)
        admin_key = seed_demo(None).admin_key
        process_env = {**os.environ, **env, "POWERTOOLS_LOG_LEVEL": "WARNING"}
        for mode, (tree, _flags) in layer_trees(tuple(args.mode or ["bytecode"])).items():
            for spec in tpl.functions(template):
                if args.only and spec.logical_id not in args.only:
                    continue
                if not any(r.function.logical_id == spec.logical_id for r in routes):
                    continue  # stream consumers and schedules: no API request to send them
                label, event = _sample_event(spec, routes, admin_key)
                rows.append(measure(spec, label, event, tree, mode, process_env, args.runs))
                print(f"  {spec.logical_id}: init {rows[-1].init_cpu_ms:.0f} ms CPU", flush=True)
    finally:
        db.stop()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after the run: {load}; median of {args.runs} processes per function")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
