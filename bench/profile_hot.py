"""Where a warm chat completion spends its time in the local runner: py-spy samples every
thread of a runner while sequential calls go through it (same upstream, DynamoDB Local and
client as ``make bench``). Prints the functions with the most samples, own and cumulative.

    .venv/bin/pip install py-spy   # not a project dependency
    python bench/profile_hot.py --calls 2000

Loopback only; stops everything it started.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table  # noqa: E402
from aigw_local.runner import TABLE_NAME  # noqa: E402
from bench import load  # noqa: E402
from bench.run import WORK, Processes, start_runner, start_upstream  # noqa: E402


def _runner_pid(procs: Processes) -> int:
    return procs._children[-1].pid


def _report(raw: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("dispatch" in f for f in frames):
            continue  # idle server threads, the accept loop
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    print(f"{total} samples inside Gateway.dispatch")
    for title, counter in (("own", own), ("cumulative", cumulative)):
        print(f"\n-- {title} --")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / max(total, 1):5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    WORK.mkdir(exist_ok=True)
    raw = WORK / "profile.collapsed"
    procs = Processes()
    db = DynamoDBLocal()
    try:
        upstream = start_upstream(procs)
        db.start()
        ensure_table(db.endpoint, TABLE_NAME)
        gateway = start_runner(procs, db.endpoint, upstream, WORK / "runner-profiled.log")
        target = load.Target("aigw", gateway.base_url + "/v1", gateway.team_key, "openai/gpt-4o-mini")
        load.run(target, requests=50, concurrency=1, max_seconds=30)  # warm: caches, connections
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(_runner_pid(procs)),
                "--format",
                "raw",
                "--rate",
                "500",
                "--output",
                str(raw),
                "--nonblocking",
                "--subprocesses",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = load.run(target, requests=args.calls, concurrency=1, max_seconds=300)
        spy.send_signal(2)
        spy.wait(timeout=60)
        print(f"{result.ok} calls, p50 {result.percentile(50):.2f} ms")
    finally:
        procs.stop_all()
        db.stop()
    _report(raw, args.top)


if __name__ == "__main__":
    main()
