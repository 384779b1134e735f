"""The load generator: keep-alive HTTP/1.1 connections on loopback, one per worker thread.

Plain ``http.client`` so the client's own cost is small and the same for every target.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str  # up to and including the OpenAI "/v1" prefix
    api_key: str
    model: str

    @property
    def path(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/") + "/chat/completions"

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        parts = urlsplit(self.base_url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}

    def body(self, *, stream: bool = False) -> bytes:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say something short."}],
            "max_tokens": 16,
        }
        if stream:
            payload["stream"] = True
        return json.dumps(payload).encode()


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def merge(self, other: Run) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.wall_s += other.wall_s

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(p) - 1]


def one_call(target: Target, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    conn.request("POST", target.path, body=target.body(), headers=target.headers())
    response = conn.getresponse()
    return response.status, response.read()


def run(target: Target, *, requests: int, concurrency: int, max_seconds: float) -> Run:
    """``requests`` calls spread over ``concurrency`` workers, stopping early after ``max_seconds``."""
    result = Run()
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        conn = target.connection()
        try:
            while time.monotonic() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                try:
                    status, _ = one_call(target, conn)
                    outcome = "ok" if status == 200 else f"HTTP {status}"
                except (http.client.HTTPException, OSError) as exc:
                    outcome = type(exc).__name__
                    conn.close()
                    conn = target.connection()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if outcome == "ok":
                        result.latencies_ms.append(elapsed)
                    else:
                        result.errors[outcome] = result.errors.get(outcome, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + 60)
    result.wall_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class StreamProbe:
    streams: bool
    ttfb_ms: list[float]
    detail: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ttfb_ms) if self.ttfb_ms else float("nan")


def first_chunk_ms(target: Target, conn: http.client.HTTPConnection) -> tuple[float | None, str]:
    """Time from sending a ``stream: true`` request to the first SSE ``data:`` event, or None
    (with the reason) when the answer is not an event stream."""
    started = time.perf_counter()
    conn.request("POST", target.path, body=target.body(stream=True), headers=target.headers())
    response = conn.getresponse()
    content_type = response.getheader("Content-Type") or ""
    if response.status != 200 or "text/event-stream" not in content_type:
        body = response.read()
        return None, f"HTTP {response.status} {content_type}: {body[:120].decode(errors='replace')}"
    first: float | None = None
    while True:
        line = response.readline()
        if not line:
            break
        if first is None and line.startswith(b"data:"):
            first = (time.perf_counter() - started) * 1000
    return first, ""


def probe_streaming(target: Target, *, requests: int) -> StreamProbe:
    conn = target.connection()
    samples: list[float] = []
    try:
        for _ in range(requests):
            try:
                ttfb, why = first_chunk_ms(target, conn)
            except (http.client.HTTPException, OSError) as exc:
                return StreamProbe(False, [], f"{type(exc).__name__}: {exc}")
            if ttfb is None:
                return StreamProbe(False, [], why)
            samples.append(ttfb)
    finally:
        conn.close()
    return StreamProbe(True, samples)
