"""DynamoDB write capacity per gateway call, counted by AWS's pricing rule, at 1 and 64 in flight.

``python bench/wcu.py [--workers 64] [--calls 40] [--concurrent-calls 512] [--root DIR]``

A proxy in front of DynamoDB Local sees every request the local runner makes: its HTTP workers,
the work each does after an answer, and the stream consumers (the report aggregator, meter
reporting). Each request names the thread that sent it (``bench/wcu_site/sitecustomize.py``,
loaded by the runner's processes only). Writes are costed as AWS bills them:

* ``PutItem``, ``UpdateItem``, ``DeleteItem``: the ``ConsumedCapacity`` DynamoDB Local returns
  for ``ReturnConsumedCapacity=TOTAL`` (asked for by the proxy), which is right for single-item
  writes, index writes included; a write refused by its condition still costs the size of the
  item as it is (at least 1), which DynamoDB Local does not report.
* ``TransactWriteItems``: DynamoDB Local under-counts these (one set, not per item), so each
  item costs 2 units per started KB of the larger of its sizes before and after, read by the
  proxy around the transaction; a cancelled transaction costs one unit per KB per item.

One team (the runner's demo team, on a plan far above what the bench spends) calls
``/v1/chat/completions`` through keep-alive connections against a slow fake upstream, first one
call at a time, then 64 at a time, with a warm-up at each level first (as warm Lambda
containers). After the last call the bench waits until nothing has been written for a few
seconds (the stream consumers and any lease maintenance have caught up), then prints write
units per call split by where they were spent, and the synchronous DynamoDB round trips on the
request path per call (those before the vendor, at 1 in flight, from timestamps, for a warm
worker: the first calls after the bench's settle pause find their worker's lease handed back).

``--root`` runs the runner of another checkout (e.g. an extract of main) with this bench.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "layers/core"), str(ROOT / "local"), str(ROOT)]

from aigw_local.dynamodb_local import DynamoDBLocal, client, free_port  # noqa: E402
from bench.load import Target, run  # noqa: E402

THREAD_HEADER = "x-aigw-bench-thread"
# Calls after the settle pause that find a cold worker (see measure()); left out of "before the vendor".
WARM_AFTER_PAUSE = 2
SINGLE_WRITES = ("PutItem", "UpdateItem", "DeleteItem")
KB = 1024
QUIET_SECONDS = 3.0
DEFAULT_LATENCY_MS = 500.0

# The bench team's plan, as in bench/run.py: limits far above what the bench sends.
BENCH_PLAN = {
    "name": "bench",
    "monthly_tokens": 10**12,
    "spend_cap_micro_usd": 10**15,
    "requests_per_minute": 1_000_000,
    "tokens_per_minute": 10**12,
}


# ---- item sizes, as AWS counts them ---------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner) if isinstance(inner, bytes) else len(inner) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    """Bytes of an item (low-level JSON shape) by AWS's rule: names plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    return max(1, math.ceil(size / KB))


# ---- the proxy ------------------------------------------------------------------------------


@dataclass
class Write:
    at: float
    thread: str
    operation: str
    pk: str
    units: float


@dataclass
class Ledger:
    writes: list[Write] = field(default_factory=list)
    requests: list[tuple[float, str, str]] = field(default_factory=list)  # (time, thread, operation)
    retries: int = 0  # requests a client sent again (its timeout, throttling): their cost counts
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.writes.clear()
            self.requests.clear()
            self.retries = 0

    def last_write(self) -> float:
        with self.lock:
            return self.writes[-1].at if self.writes else 0.0


def _key_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("Key") or {k: v for k, v in (body.get("Item") or {}).items() if k in ("pk", "sk")}


def _pk(key: Mapping[str, Any]) -> str:
    return str(key.get("pk", {}).get("S", "?"))


class _QuietServer(ThreadingHTTPServer):
    """A threading server with room for every worker's connection, quiet about clients that hang
    up (a runner worker whose read timed out: it sends the request again, and that is counted)."""

    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            super().handle_error(request, client_address)


class Proxy:
    """Forwards to DynamoDB Local; records and costs every write (see the module docstring)."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.ledger = Ledger()
        self.reader = client(target)  # the proxy's own reads of item sizes, not counted
        self._local = threading.local()
        self.server = _QuietServer(("127.0.0.1", free_port()), self._handler())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Proxy:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list]:  # type: ignore[type-arg]
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read(), response.getheaders()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _size_now(self, table: str, key: Mapping[str, Any]) -> int:
        found = self.reader.get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
        return item_size(_low_level(found)) if found else 0

    def handle(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes, list]:  # type: ignore[type-arg]
        lowered = {k.lower(): k for k in headers}
        operation = headers.get(lowered.get("x-amz-target", ""), "").rpartition(".")[2]
        thread = headers.pop(lowered[THREAD_HEADER], "?") if THREAD_HEADER in lowered else "?"
        now = time.monotonic()
        body: dict[str, Any] = json.loads(raw) if raw else {}
        attempt = headers.get(lowered.get("amz-sdk-request", ""), "attempt=1").split(";")[0]
        with self.ledger.lock:
            self.ledger.requests.append((now, thread, operation))
            if attempt.strip() != "attempt=1":
                self.ledger.retries += 1
        if operation in SINGLE_WRITES:
            # The answer goes back as it came (its x-amz-crc32 covers the body): a caller that did
            # not ask for ConsumedCapacity ignores it.
            body["ReturnConsumedCapacity"] = "TOTAL"
            raw = json.dumps(body).encode()
            status, payload, reply_headers = self._forward(method, path, raw, headers)
            answer = json.loads(payload or b"{}")
            if status == 200:
                cost = float(answer.get("ConsumedCapacity", {}).get("CapacityUnits", 0))
            elif "ConditionalCheckFailed" in str(answer.get("__type", "")):
                cost = units(self._size_now(body["TableName"], _key_of(body)))
            else:
                cost = 0.0
            self._record(now, thread, operation, _pk(_key_of(body)), cost)
            return status, payload, reply_headers
        if operation == "TransactWriteItems":
            return self._transaction(method, path, raw, headers, body, now, thread)
        return self._forward(method, path, raw, headers)

    def _transaction(
        self,
        method: str,
        path: str,
        raw: bytes,
        headers: dict[str, str],
        body: dict[str, Any],
        now: float,
        thread: str,
    ) -> tuple[int, bytes, list]:  # type: ignore[type-arg]
        targets = []
        for entry in body.get("TransactItems", []):
            ((kind, op),) = entry.items()
            key = _key_of(op)
            targets.append((kind, op["TableName"], key, self._size_now(op["TableName"], key)))
        status, payload, reply_headers = self._forward(method, path, raw, headers)
        for kind, table, key, before in targets:
            after = self._size_now(table, key) if status == 200 else 0
            if kind == "Put":
                written = next(
                    e["Put"]["Item"] for e in body["TransactItems"] if "Put" in e and _key_of(e["Put"]) == key
                )
                after = max(after, item_size(written))
            size = max(before, after)
            cost = 2 * units(size) if status == 200 else units(size)
            self._record(now, thread, f"Transact{kind}", _pk(key), float(cost))
        return status, payload, reply_headers

    def _record(self, at: float, thread: str, operation: str, pk: str, cost: float) -> None:
        with self.ledger.lock:
            self.ledger.writes.append(Write(at, thread, operation, pk, cost))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                skip = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                try:
                    status, payload, reply_headers = proxy.handle("POST", self.path, raw, headers)
                except (http.client.HTTPException, OSError):
                    status, payload, reply_headers = 502, b"{}", []
                try:
                    self.send_response(status)
                    for name, value in reply_headers:
                        if name.lower() not in skip:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting (and will retry)

        return Handler


def _low_level(item: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's parsed item back to the wire's JSON shape (bytes stay bytes)."""
    return {k: _plain(v) for k, v in item.items()}


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "M":
        return {"M": {k: _plain(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_plain(v) for v in inner]}
    if isinstance(inner, Decimal):
        inner = str(inner)
    return {kind: inner}


# ---- the fake vendor ------------------------------------------------------------------------


class SlowUpstream:
    """An OpenAI-compatible upstream that answers after ``latency`` seconds and remembers when
    each call arrived (so round trips before the vendor can be read from timestamps)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.arrivals: list[float] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                upstream.arrivals.append(time.monotonic())
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                time.sleep(upstream.latency)
                body = json.dumps(
                    {
                        "id": "chatcmpl-wcu",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request.get("model", "gpt-4o-mini"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "Fine."},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the runner -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    base_url: str
    admin_key: str
    team_key: str


@contextmanager
def runner(root: Path, endpoint: str, upstream: str, workers: int, log: Path) -> Iterator[Runner]:
    port = free_port()
    paths = [
        str(BENCH / "wcu_site"),
        str(root / "layers/core"),
        str(root / "local"),
        os.environ.get("PYTHONPATH", ""),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": "sk-fake-upstream",
        "UPSTREAM_TIMEOUT_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet", "--workers", str(workers)]
    command += ["--port", str(port), "--dynamodb-endpoint", endpoint]
    out = log.open("w", encoding="utf-8")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root
    )
    try:
        found: dict[str, str] = {}
        deadline = time.monotonic() + 180
        assert process.stdout is not None
        while "team" not in found:
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"the runner did not start; see {log}")
            out.write(line)
            for role in ("admin", "team"):
                if f"demo {role} key:" in line:
                    found[role] = line.split(f"demo {role} key:")[1].split()[0]

        def drain() -> None:
            assert process.stdout is not None
            for rest in process.stdout:
                out.write(rest)
                out.flush()

        threading.Thread(target=drain, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {found['admin']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as admin:
            admin.put("/admin/plans/bench", json=BENCH_PLAN).raise_for_status()
            admin.put("/admin/teams/demo/plan", json={"plan_id": "bench"}).raise_for_status()
        yield Runner(base, found["admin"], found["team"])
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        out.close()


# ---- measuring ------------------------------------------------------------------------------

PARTS = ("request path", "usage record", "lease maintenance", "stream consumers")


def part_of(write: Write) -> str:
    if write.thread.startswith("aigw-streams"):
        return "stream consumers"
    if "process_request" in write.thread:
        return "request path"
    if write.pk.startswith("USAGE#"):
        return "usage record"
    return "lease maintenance"  # after the answer (settle, renew, flush) or a worker's idle return


def kind_of(pk: str) -> str:
    head = pk.split("#", 1)[0]
    return head if pk != "?" else "?"


@dataclass
class Level:
    in_flight: int
    calls: int
    errors: dict[str, int]
    wcu: dict[str, float]
    by_kind: dict[str, float]
    by_operation: dict[str, float]
    hottest_pk: tuple[str, float]
    sync_round_trips: float
    before_vendor: float | None
    client_retries: int = 0

    @property
    def total(self) -> float:
        return sum(self.wcu.values())


def _settle(ledger: Ledger, *, quiet: float = QUIET_SECONDS, limit: float = 60.0) -> None:
    """Wait until nothing has been written for ``quiet`` seconds (stream consumers and lease
    maintenance caught up)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if time.monotonic() - max(ledger.last_write(), 0.0) >= quiet:
            return


def _sequential(target: Target, calls: int) -> tuple[list[float], dict[str, int]]:
    """``calls`` calls one after another on one keep-alive connection; their start times."""
    starts: list[float] = []
    errors: Counter[str] = Counter()
    conn = target.connection(timeout=120)
    try:
        for _ in range(calls):
            starts.append(time.monotonic())
            conn.request("POST", target.path, body=target.body(), headers=target.headers())
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors[f"HTTP {response.status}"] += 1
    finally:
        conn.close()
    return starts, dict(errors)


def measure(
    proxy: Proxy,
    upstream: SlowUpstream,
    target: Target,
    *,
    in_flight: int,
    calls: int,
    sequential_warmup: int = 3,
) -> Level:
    ledger = proxy.ledger
    if in_flight == 1:
        # Warm-up and the measured calls on one keep-alive connection: one warm worker, as one
        # warm Lambda container serves a caller that sends one call at a time.
        conn_target = target
        _sequential(conn_target, sequential_warmup)
        _settle(ledger)
        ledger.reset()
        del upstream.arrivals[:]
        starts, errors = _sequential(conn_target, calls)
        done = calls - sum(errors.values())
    else:
        run(target, requests=in_flight * 2, concurrency=in_flight, max_seconds=120)
        _settle(ledger)
        ledger.reset()
        del upstream.arrivals[:]
        result = run(target, requests=calls, concurrency=in_flight, max_seconds=600)
        starts, errors, done = [], result.errors, result.ok
    _settle(ledger)
    with ledger.lock:
        writes = list(ledger.writes)
        requests = list(ledger.requests)
        retries = ledger.retries
    per = max(done, 1)
    wcu = {part: 0.0 for part in PARTS}
    by_kind: dict[str, float] = defaultdict(float)
    by_operation: dict[str, float] = defaultdict(float)
    by_pk: dict[str, float] = defaultdict(float)
    for write in writes:
        wcu[part_of(write)] += write.units / per
        by_kind[kind_of(write.pk)] += write.units / per
        by_operation[write.operation] += write.units / per
        by_pk[write.pk] += write.units / per
    hottest = max(by_pk.items(), key=lambda kv: kv[1]) if by_pk else ("-", 0.0)
    sync = [r for r in requests if "process_request" in r[1]]
    before_vendor = None
    if starts:
        arrivals = sorted(upstream.arrivals)
        # The settle pause above leaves the worker idle: the local runner hands its lease back
        # after a second (a Lambda container would keep it), and the key cache ages past its
        # TTL. The first calls after it are a cold worker's; the target is about warm ones.
        warm = list(zip(starts, arrivals, strict=False))[WARM_AFTER_PAUSE:]
        counted = sum(1 for start, arrival in warm for at, _, _ in sync if start <= at < arrival)
        before_vendor = counted / max(len(warm), 1)
    return Level(
        in_flight=in_flight,
        calls=done,
        errors=dict(errors),
        wcu=wcu,
        by_kind=dict(by_kind),
        by_operation=dict(by_operation),
        hottest_pk=hottest,
        sync_round_trips=len(sync) / per,
        before_vendor=before_vendor,
        client_retries=retries,
    )


def measure_all(
    *,
    root: Path = ROOT,
    workers: int = 64,
    calls: int = 40,
    concurrent_calls: int = 512,
    latency: float = DEFAULT_LATENCY_MS / 1000,
) -> list[Level]:
    work = BENCH / ".work"
    work.mkdir(exist_ok=True)
    upstream = SlowUpstream(latency)
    with DynamoDBLocal() as db:
        proxy = Proxy(db.endpoint).start()
        try:
            with runner(root, proxy.endpoint, upstream.url, workers, work / "wcu-runner.log") as gateway:
                target = Target("aigw", gateway.base_url + "/v1", gateway.team_key, "openai/gpt-4o-mini")
                one = measure(proxy, upstream, target, in_flight=1, calls=calls)
                many = measure(proxy, upstream, target, in_flight=64, calls=concurrent_calls)
                return [one, many]
        finally:
            proxy.stop()
            upstream.stop()


def table(levels: list[Level]) -> str:
    """The result as a Markdown table (one column per level)."""
    head = "| write units per call | " + " | ".join(f"{lv.in_flight} in flight" for lv in levels) + " |"
    lines = [head, "|---|" + "---|" * len(levels)]
    for part in PARTS:
        lines.append(f"| {part} | " + " | ".join(f"{lv.wcu[part]:.2f}" for lv in levels) + " |")
    lines.append("| **total** | " + " | ".join(f"**{lv.total:.2f}**" for lv in levels) + " |")
    lines.append(
        "| synchronous DynamoDB round trips on the request path | "
        + " | ".join(f"{lv.sync_round_trips:.2f}" for lv in levels)
        + " |"
    )
    lines.append(
        "| of which before the vendor was called, warm worker | "
        + " | ".join("-" if lv.before_vendor is None else f"{lv.before_vendor:.2f}" for lv in levels)
        + " |"
    )
    lines.append("| calls measured | " + " | ".join(str(lv.calls) for lv in levels) + " |")
    return "\n".join(lines)


def details(levels: list[Level]) -> str:
    out = []
    for lv in levels:
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(lv.by_kind.items(), key=lambda kv: -kv[1]))
        ops = ", ".join(f"{k} {v:.2f}" for k, v in sorted(lv.by_operation.items(), key=lambda kv: -kv[1]))
        out.append(
            f"- {lv.in_flight} in flight: by item kind (pk prefix): {kinds}; by operation: {ops}; "
            f"hottest partition key {lv.hottest_pk[0]} ({lv.hottest_pk[1]:.2f} per call); "
            f"DynamoDB requests sent again by their client: {lv.client_retries}"
            + (f"; failed calls {lv.errors}" if lv.errors else "")
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose runner to measure")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--calls", type=int, default=40, help="calls measured at 1 in flight")
    parser.add_argument("--concurrent-calls", type=int, default=512, help="calls measured at 64 in flight")
    parser.add_argument(
        "--latency-ms", type=float, default=DEFAULT_LATENCY_MS, help="the fake vendor's answer time"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = measure_all(
        root=args.root.resolve(),
        workers=args.workers,
        calls=args.calls,
        concurrent_calls=args.concurrent_calls,
        latency=args.latency_ms / 1000,
    )
    if args.json:
        print(json.dumps([lv.__dict__ | {"total": lv.total} for lv in levels], indent=2))
        return
    print(table(levels))
    print()
    print(details(levels))


if __name__ == "__main__":
    main()
