"""How much a DynamoDB Local write slows down while another process runs transactions: the
reserve of one call (an UpdateItem with ReturnValues=ALL_NEW) alone, then beside a loop of
two-item transactions (the settle's shape) on another item and on the same item.

    python bench/ddb_contention.py

Explains why back-to-back calls pay part of the previous call's settle on the bench machine
even though it runs after the answer (docs/bench.md, third round).
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "local"), str(ROOT / "layers/core")]

from aigw_local.dynamodb_local import DynamoDBLocal, client, ensure_table  # noqa: E402
from bench.run import reserve_like, settle_like  # noqa: E402

TABLE = "contention"


def transactions(endpoint: str, stop: Any, team: str) -> None:
    ddb = client(endpoint)
    n = 0
    while not stop.is_set():
        n += 1
        record = {"pk": {"S": f"USAGE#{team}#{n}"}, "sk": {"S": "r"}, "body": {"S": "x" * 300}}
        settle_like(ddb, TABLE, {"pk": {"S": team}, "sk": {"S": "BILLING"}}, record)


def reserve_ms(ddb: Any) -> float:
    started = time.perf_counter()
    reserve_like(ddb, TABLE, {"pk": {"S": "TEAM#a"}, "sk": {"S": "BILLING"}})
    return (time.perf_counter() - started) * 1000


def main() -> None:
    with DynamoDBLocal() as db:
        ensure_table(db.endpoint, TABLE)
        ddb = client(db.endpoint)
        for _ in range(100):
            reserve_ms(ddb)
        alone = statistics.median(reserve_ms(ddb) for _ in range(300))
        print(f"reserve alone{'':39s} p50 {alone:.2f} ms")
        for label, team in (("another team's item", "TEAM#b"), ("the same item", "TEAM#a")):
            stop = multiprocessing.Event()
            loop = multiprocessing.Process(target=transactions, args=(db.endpoint, stop, team))
            loop.start()
            time.sleep(1)
            p50 = statistics.median(reserve_ms(ddb) for _ in range(300))
            print(f"reserve beside transactions on {label:20s} p50 {p50:.2f} ms")
            stop.set()
            loop.join()


if __name__ == "__main__":
    main()
