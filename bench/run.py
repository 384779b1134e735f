"""``make bench``: aigw's local runner against LiteLLM proxy, both in front of one fake upstream.

Everything runs on 127.0.0.1 and is stopped at the end. Prints a table and writes
bench/RESULTS.md. Not part of the test suite: numbers depend on the machine.

What is measured (see docs/bench.md for the method):
  latency p50/p95/p99 at concurrency 1, throughput at a fixed concurrency, added latency over
  direct calls to the upstream, streaming time to first chunk (only where the target streams),
  DynamoDB requests per gateway call (a counting proxy in front of DynamoDB Local), DynamoDB
  write units per call at 1 and 64 calls in flight for one team (bench/wcu.py), cold start and
  peak memory of each Lambda handler, and the `sam build` package sizes.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import platform
import py_compile
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "layers/core"), str(ROOT / "local"), str(BENCH.parent)]

import slim_botocore  # noqa: E402  (layers/core/slim_botocore.py, as the Makefile runs it)

from aigw_local import apigw  # noqa: E402
from aigw_local import template as tpl  # noqa: E402
from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table, free_port  # noqa: E402
from aigw_local.runner import DEMO_TEAM, TABLE_NAME, local_environment  # noqa: E402
from bench import litellm_proxy, wcu  # noqa: E402
from bench.load import Run, StreamProbe, Target, probe_streaming, run  # noqa: E402

WORK = BENCH / ".work"
UPSTREAM_LATENCY_MS = 2.0

# Targets (from the issue): what "good enough" means for this gateway.
# Issue 12: added latency at most 0.3 x LiteLLM's at p50 and 0.5 x at p95, in the same run.
TARGET_ADDED_LATENCY_RATIO = 0.3
TARGET_ADDED_LATENCY_RATIO_P95 = 0.5
TARGET_DDB_PER_CALL = 2.0
TARGET_WCU_PER_CALL = 3.0
TARGET_COLD_IMPORT_MS = 300.0


@dataclass(frozen=True)
class Sizes:
    latency_requests: int
    concurrency: int
    throughput_requests: int
    stream_requests: int
    ddb_calls: int
    cold_runs: int
    max_seconds: float
    wcu_workers: int = 64
    wcu_calls: int = 40  # at 1 in flight
    wcu_concurrent_calls: int = 512  # at 64 in flight


FULL = Sizes(400, 8, 1500, 40, 50, 7, 30.0)
QUICK = Sizes(60, 4, 200, 10, 20, 3, 10.0, wcu_workers=16, wcu_calls=10, wcu_concurrent_calls=128)


class Processes:
    """Every child the bench starts, so all of them are stopped, whatever happens."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[Any]] = []

    def add(self, process: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self._children.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._children):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in reversed(self._children):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_line(process: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("process exited before it was ready:\n" + "".join(lines))
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise RuntimeError(f"not ready within {timeout:.0f}s:\n" + "".join(lines))


def start_upstream(procs: Processes) -> str:
    port = free_port()
    process = procs.add(
        subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "upstream.py"),
                "--port",
                str(port),
                "--latency-ms",
                str(UPSTREAM_LATENCY_MS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
    )
    _wait_line(process, "ready", 30)
    return f"http://127.0.0.1:{port}"


def start_counter(procs: Processes, target: str) -> str:
    port = free_port()
    process = procs.add(
        subprocess.Popen(
            [sys.executable, str(BENCH / "ddb_counter.py"), "--port", str(port), "--target", target],
            stdout=subprocess.PIPE,
            text=True,
        )
    )
    _wait_line(process, "ready", 30)
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Runner:
    base_url: str
    admin_key: str
    team_key: str


# The bench team's plan: limits far above what the bench sends, so the gateway does all its
# billing work (reservation, rate-limit window, settlement) without ever refusing, as LiteLLM
# does its rpm and budget checks. The runner's free plan (600 rpm) would answer 429s instead.
BENCH_PLAN = {
    "name": "bench",
    "monthly_tokens": 10**12,
    "spend_cap_micro_usd": 10**15,
    "requests_per_minute": 1_000_000,
    "tokens_per_minute": 10**12,
}


def give_bench_plan(base_url: str, admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        http.put("/admin/plans/bench", json=BENCH_PLAN).raise_for_status()
        http.put(f"/admin/teams/{DEMO_TEAM}/plan", json={"plan_id": "bench"}).raise_for_status()


def start_runner(
    procs: Processes, dynamodb: str, upstream: str, log: Path, *, streams: bool = True, workers: int = 4
) -> Runner:
    port = free_port()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": "sk-fake-upstream",
        "PYTHONUNBUFFERED": "1",
    }
    if not streams:
        env["AIGW_STREAM_POLL_SECONDS"] = "0"
    process = procs.add(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aigw_local",
                "--in-memory",
                "--quiet",
                # Four processes, as four warm Lambda containers: one process runs one
                # invocation at a time, so throughput at concurrency 8 needs several.
                "--workers",
                str(workers),
                "--port",
                str(port),
                "--dynamodb-endpoint",
                dynamodb,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
    )
    lines = _wait_line(process, r"demo team key:", 120)
    found = dict(re.findall(r"demo (admin|team) key:\s+(\S+)", "".join(lines)))
    # Drain the rest of its output so a chatty runner never blocks on a full pipe; keep it
    # (handler errors are logged even with --quiet).
    subprocess_drain(process, log)
    runner = Runner(f"http://127.0.0.1:{port}", found["admin"], found["team"])
    give_bench_plan(runner.base_url, runner.admin_key)
    return runner


def subprocess_drain(process: subprocess.Popen[str], log: Path) -> None:
    def drain() -> None:
        assert process.stdout is not None
        with log.open("w", encoding="utf-8") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()

    threading.Thread(target=drain, daemon=True).start()


# ---- measurements -------------------------------------------------------------------------


@dataclass
class TargetResult:
    target: Target
    latency: Run
    throughput: Run
    stream: StreamProbe


ROUNDS = 4


def measure_targets(targets: list[Target], sizes: Sizes) -> list[TargetResult]:
    """Each measure in rounds that alternate between targets, so a burst of load from
    elsewhere on the machine lands on all of them rather than on whichever ran then."""
    for target in targets:
        run(target, requests=30, concurrency=2, max_seconds=30)
    latency = {t.name: Run() for t in targets}
    throughput = {t.name: Run() for t in targets}
    for index in range(ROUNDS):
        print(f"  round {index + 1}/{ROUNDS}: latency and throughput of each target", flush=True)
        for target in targets:
            latency[target.name].merge(
                run(
                    target,
                    requests=sizes.latency_requests // ROUNDS,
                    concurrency=1,
                    max_seconds=sizes.max_seconds * 2 / ROUNDS,
                )
            )
            throughput[target.name].merge(
                run(
                    target,
                    requests=sizes.throughput_requests // ROUNDS,
                    concurrency=sizes.concurrency,
                    max_seconds=sizes.max_seconds / ROUNDS,
                )
            )
    print("  streaming first chunk of each target", flush=True)
    return [
        TargetResult(
            t, latency[t.name], throughput[t.name], probe_streaming(t, requests=sizes.stream_requests)
        )
        for t in targets
    ]


def reserve_like(ddb: Any, table: str, key: dict[str, Any]) -> None:
    """A request shaped like aigw's reserve: a conditional UpdateItem returning the item."""
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD held :t",
        ConditionExpression="attribute_not_exists(held) OR held <= :max",
        ExpressionAttributeValues={":t": {"N": "100"}, ":max": {"N": str(10**12)}},
        ReturnValues="ALL_NEW",
    )


def settle_like(ddb: Any, table: str, key: dict[str, Any], record: dict[str, Any]) -> None:
    """A request shaped like aigw's settle: the counters' update and the usage record's put
    in one transaction."""
    ddb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": table,
                    "Key": key,
                    "UpdateExpression": "ADD held :d",
                    "ExpressionAttributeValues": {":d": {"N": "-100"}},
                }
            },
            {"Put": {"TableName": table, "Item": record, "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
    )


def count_dynamodb(runner: Runner, counter: str, calls: int) -> dict[str, float]:
    """DynamoDB requests per chat completion with a warm (cached) key."""
    target = Target("aigw", runner.base_url + "/v1", runner.team_key, "openai/gpt-4o-mini")
    warm = run(target, requests=3, concurrency=1, max_seconds=30)
    if warm.errors:
        raise RuntimeError(f"counting runner fails: {warm.errors}")
    httpx.post(counter + "/__reset", timeout=5)
    done = run(target, requests=calls, concurrency=1, max_seconds=120)
    counts: dict[str, int] = httpx.get(counter + "/__counts", timeout=5).json()
    if done.errors or not done.ok:
        raise RuntimeError(f"counting run failed: {done.errors}")
    return {op: n / done.ok for op, n in sorted(counts.items())}


COLD_CODE = r"""
import importlib, json, os, resource, sys, time
started, started_cpu = time.perf_counter(), time.process_time()
sys.path[:0] = [*os.environ["BENCH_LAYER"].split(os.pathsep), os.environ["BENCH_FUNCTION_DIR"]]
module = importlib.import_module(os.environ["BENCH_MODULE"])
handler = getattr(module, os.environ["BENCH_ATTR"])
imported, imported_cpu = time.perf_counter(), time.process_time()

class Context:
    function_name = os.environ["BENCH_FUNCTION"]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:" + function_name
    memory_limit_in_mb = 512
    aws_request_id = "bench-cold-start"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000

result = handler(json.loads(sys.stdin.read()), Context())
invoked, invoked_cpu = time.perf_counter(), time.process_time()
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "import_cpu_ms": (imported_cpu - started_cpu) * 1000,
    "first_ms": (invoked - imported) * 1000,
    "first_cpu_ms": (invoked_cpu - imported_cpu) * 1000,
    "status": result["statusCode"],
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
"""


@dataclass(frozen=True)
class ColdStart:
    function: str
    route: str
    mode: str
    import_ms: float
    import_cpu_ms: float
    first_ms: float
    first_cpu_ms: float
    process_ms: float
    maxrss_mb: float
    status: int


def _sample_event(
    spec: tpl.FunctionSpec, routes: list[tpl.Route], admin_key: str
) -> tuple[str, dict[str, Any]]:
    """A representative first request: a chat completion for the invoke function, otherwise the
    function's first parameterless GET (or its first route with placeholder parameters)."""
    own = [r for r in routes if r.function.logical_id == spec.logical_id]
    body = b""
    chosen = next((r for r in own if (r.method, r.path) == ("POST", "/v1/chat/completions")), None)
    if chosen is not None:
        body = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "cold"}]}).encode()
    else:
        chosen = next((r for r in own if r.method == "GET" and not r.param_names), own[0])
    params = {name: "bench" for name in chosen.param_names}
    path = chosen.path
    for name in chosen.param_names:
        path = path.replace("{" + name + "}", "bench").replace("{" + name + "+}", "bench")
    request = apigw.HttpRequest(
        method=chosen.method,
        path=path,
        query="",
        headers=[("Authorization", f"Bearer {admin_key}"), ("Content-Type", "application/json")],
        body=body,
        client_ip="127.0.0.1",
        host="127.0.0.1",
    )
    return f"{chosen.method} {chosen.path}", apigw.build_event(request, chosen, params)


LAYER_MODES = ("bytecode", "source only")


def native_layer() -> Path:
    """The layer's dependencies installed for this machine (the arm64 build cannot load on x86)."""
    target = WORK / "layer-native" / "python"
    requirements = ROOT / "layers/core/requirements.txt"
    stamp = target / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
        print("  installing the layer's requirements into bench/.work/layer-native ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--upgrade",
                "--target",
                str(target),
                "-r",
                str(requirements),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        stamp.touch()
    return target


def layer_trees(modes: tuple[str, ...] = LAYER_MODES) -> dict[str, tuple[Path, list[str]]]:
    """The layer as Lambda would see it, in two builds: with bytecode and botocore's data cut to
    the services used (what layers/core/Makefile builds) and source only (what `sam build`'s
    python3.13 builder shipped). Lambda's
    /opt is read-only, so a source-only layer is compiled again by every cold start; ``-B``
    does the same here. Returns mode -> (tree, extra python flags)."""
    native = native_layer()
    trees: dict[str, tuple[Path, list[str]]] = {}
    for mode, flags in ((m, f) for m, f in (("bytecode", []), ("source only", ["-B"])) if m in modes):
        tree = WORK / ("layer-" + mode.replace(" ", "-"))
        if tree.exists():
            shutil.rmtree(tree)
        shutil.copytree(native, tree, symlinks=True)
        shutil.copytree(
            ROOT / "layers/core/aigw", tree / "aigw", ignore=shutil.ignore_patterns("__pycache__")
        )
        if flags:
            for cache in list(tree.rglob("__pycache__")):
                shutil.rmtree(cache)
        else:
            slim_botocore.slim(tree)
            compileall.compile_dir(
                tree / "aigw", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
            )
        trees[mode] = (tree, flags)
    return trees


def cold_starts(
    dynamodb: str,
    admin_key: str,
    runs: int,
    *,
    modes: tuple[str, ...] | list[str] = LAYER_MODES,
    only: list[str] | None = None,
) -> list[ColdStart]:
    """``modes``: which layer builds; ``only``: these functions (logical ids), default all."""
    template = tpl.load()
    routes = tpl.routes(template)
    if only:
        routes = [r for r in routes if r.function.logical_id in only]
    env = {**os.environ, **local_environment(template, table_name=TABLE_NAME, endpoint=dynamodb)}
    results = []
    for mode, (tree, flags) in layer_trees(tuple(modes)).items():
        # As in Lambda: the layer (aigw and its pinned dependencies) and the function, nothing
        # of the dev virtualenv (-S), whose extras (pyOpenSSL, awscrt) botocore would import.
        results += _cold_starts(
            template, routes, {**env, "BENCH_LAYER": str(tree)}, flags, mode, admin_key, runs
        )
    return results


def _cold_starts(
    template: dict[str, Any],
    routes: list[tpl.Route],
    env: dict[str, str],
    flags: list[str],
    mode: str,
    admin_key: str,
    runs: int,
) -> list[ColdStart]:
    results = []
    for spec in tpl.functions(template):
        if not any(r.function.logical_id == spec.logical_id for r in routes):
            continue
        label, event = _sample_event(spec, routes, admin_key)
        module, _, attr = spec.handler.rpartition(".")
        fn_env = {
            **env,
            "BENCH_FUNCTION_DIR": str(spec.code_uri),
            "BENCH_MODULE": module,
            "BENCH_ATTR": attr,
            "BENCH_FUNCTION": spec.logical_id,
        }
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-S", *flags, "-c", COLD_CODE],
                input=json.dumps(event),
                capture_output=True,
                text=True,
                env=fn_env,
                timeout=120,
                cwd=spec.code_uri,
            )
            wall = (time.perf_counter() - started) * 1000
            if done.returncode != 0:
                raise RuntimeError(f"cold start of {spec.logical_id} failed:\n{done.stderr[-2000:]}")
            samples.append((json.loads(done.stdout.strip().splitlines()[-1]), wall))
        results.append(
            ColdStart(
                function=spec.logical_id,
                route=label,
                mode=mode,
                import_ms=statistics.median(s["import_ms"] for s, _ in samples),
                import_cpu_ms=statistics.median(s["import_cpu_ms"] for s, _ in samples),
                first_ms=statistics.median(s["first_ms"] for s, _ in samples),
                first_cpu_ms=statistics.median(s["first_cpu_ms"] for s, _ in samples),
                process_ms=statistics.median(w for _, w in samples),
                maxrss_mb=max(s["maxrss_kb"] for s, _ in samples) / 1024,
                status=samples[-1][0]["status"],
            )
        )
    return results


@dataclass(frozen=True)
class PackageSize:
    name: str
    files: int
    unzipped: int
    zipped: int


def package_sizes(build: bool) -> list[PackageSize]:
    build_dir = ROOT / ".aws-sam" / "build"
    if build or not build_dir.exists():
        print("  sam build ...", flush=True)
        log = WORK / "sam-build.log"
        with log.open("wb") as out:
            subprocess.run(["sam", "build"], cwd=ROOT, check=True, stdout=out, stderr=subprocess.STDOUT)
    sizes = []
    for artifact in sorted(p for p in build_dir.iterdir() if p.is_dir()):
        files = [f for f in artifact.rglob("*") if f.is_file()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for f in files:
                archive.write(f, f.relative_to(artifact))
        sizes.append(
            PackageSize(artifact.name, len(files), sum(f.stat().st_size for f in files), buffer.tell())
        )
    return sizes


# ---- report -------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"  # NaN check without math import


def _ratio(ours: float, theirs: float) -> str:
    if theirs != theirs or ours != ours or theirs <= 0:
        return "n/a"
    return f"{ours / theirs:.2f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


@dataclass
class Report:
    started: datetime
    sizes: Sizes
    results: list[TargetResult]
    litellm_mode: str
    litellm_version: str
    ddb: dict[str, float] | None
    cold: list[ColdStart]
    packages: list[PackageSize]
    notes: list[str]
    load: str = ""
    # Response cache hits (x-aigw-cache: on, same request repeated): p50, p95 ms, or None.
    cache_hit: tuple[float, float] | None = None
    wcu: list[wcu.Level] | None = None

    def by_name(self, name: str) -> TargetResult | None:
        return next((r for r in self.results if r.target.name == name), None)

    def render(self) -> str:
        direct = self.by_name("direct")
        ours = self.by_name("aigw")
        theirs = self.by_name("litellm")
        floor50 = direct.latency.percentile(50) if direct else float("nan")
        floor95 = direct.latency.percentile(95) if direct else float("nan")
        floor_ttfb = direct.stream.median_ms if direct and direct.stream.streams else float("nan")
        out = io.StringIO()
        w = out.write
        w(
            f"Run: {self.started.isoformat(timespec='seconds')} on {platform.node() or 'host'} "
            f"({os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}); "
            f"LiteLLM {self.litellm_version or 'not run'}; load average at start {self.load}.\n"
            f"Code measured: {_code_version()}.\n\n"
        )
        w(
            f"Upstream: fake OpenAI-compatible server on loopback, {UPSTREAM_LATENCY_MS:g} ms fixed latency. "
            f"Latency: {self.sizes.latency_requests} sequential calls; throughput: "
            f"{self.sizes.throughput_requests} calls at concurrency {self.sizes.concurrency} "
            f"(at most {self.sizes.max_seconds:g} s); both in {ROUNDS} rounds alternating between targets, "
            "after a warm-up. Milliseconds.\n\n"
        )
        w(
            "| target | p50 | p95 | p99 | added p50 | added p95 | req/s @c"
            f"{self.sizes.concurrency} | errors | stream first chunk | added first chunk |\n"
        )
        w("|---|---|---|---|---|---|---|---|---|---|\n")
        for r in self.results:
            lat = r.latency
            errors = sum(lat.errors.values()) + sum(r.throughput.errors.values())
            ttfb = r.stream.median_ms if r.stream.streams else float("nan")
            w(
                f"| {r.target.name} | {_ms(lat.percentile(50))} | {_ms(lat.percentile(95))} | "
                f"{_ms(lat.percentile(99))} | {_ms(lat.percentile(50) - floor50)} | "
                f"{_ms(lat.percentile(95) - floor95)} | {r.throughput.throughput:.0f} | {errors} | "
                f"{_ms(ttfb)} | {_ms(ttfb - floor_ttfb)} |\n"
            )
        if self.cache_hit is not None:
            p50, p95 = self.cache_hit
            w(f"| aigw cache hit | {_ms(p50)} | {_ms(p95)} | | | | | | | |\n")
        w("\n")
        added_ratio = float("nan")
        added_ratio_95 = float("nan")
        if ours and theirs:
            added_ratio_p50 = (ours.latency.percentile(50) - floor50) / (
                theirs.latency.percentile(50) - floor50
            )
            added_ratio = added_ratio_p50
            w("Ours / LiteLLM:\n\n")
            w("| measure | ratio |\n|---|---|\n")
            w(f"| added latency p50 | {added_ratio_p50:.2f} |\n")
            theirs95 = theirs.latency.percentile(95) - floor95
            if theirs95 > 0:
                added_ratio_95 = (ours.latency.percentile(95) - floor95) / theirs95
            w(f"| added latency p95 | {_ratio(ours.latency.percentile(95) - floor95, theirs95)} |\n")
            w(f"| latency p99 | {_ratio(ours.latency.percentile(99), theirs.latency.percentile(99))} |\n")
            w(f"| throughput | {_ratio(ours.throughput.throughput, theirs.throughput.throughput)} |\n")
            ours_ttfb = ours.stream.median_ms - floor_ttfb if ours.stream.streams else float("nan")
            theirs_ttfb = theirs.stream.median_ms - floor_ttfb if theirs.stream.streams else float("nan")
            w(f"| added first-chunk latency | {_ratio(ours_ttfb, theirs_ttfb)} |\n\n")
        if self.wcu:
            worst = max(level.total for level in self.wcu)
            w(
                f"DynamoDB write units per call, one team (bench/wcu.py: {self.sizes.wcu_workers} runner "
                f"workers, a fake vendor answering in {wcu.DEFAULT_LATENCY_MS:g} ms, every write through a "
                "proxy in front of DynamoDB Local, costed by AWS's rule: single-item writes from "
                "ReturnConsumedCapacity, transactions at 2 units per item per started KB; stream "
                "consumers and lease maintenance included, amortised). Target at most "
                f"{TARGET_WCU_PER_CALL:g} at both levels: {_verdict(worst <= TARGET_WCU_PER_CALL)}.\n\n"
            )
            w(wcu.table(self.wcu) + "\n\n" + wcu.details(self.wcu) + "\n\n")
        for r in self.results:
            errors = {**r.latency.errors}
            for kind, n in r.throughput.errors.items():
                errors[kind] = errors.get(kind, 0) + n
            if errors:
                w(f"Errors through {r.target.name}: {', '.join(f'{k} x{n}' for k, n in errors.items())}.\n\n")
        for r in self.results:
            if not r.stream.streams:
                w(f"Streaming through {r.target.name}: n/a ({r.stream.detail[:160]}).\n\n")
        w(f"LiteLLM configuration: {self.litellm_mode}.\n\n")

        per_call = sum(self.ddb.values()) if self.ddb else float("nan")
        if self.ddb is not None:
            ops = ", ".join(f"{op} {n:.2f}" for op, n in self.ddb.items()) or "none"
            w(
                f"DynamoDB requests per chat completion (warm cached key, {self.sizes.ddb_calls} calls "
                "through "
                f"a counting proxy in front of DynamoDB Local): **{per_call:.2f}** ({ops}). "
                "A warm call makes none before the vendor: it is admitted from its container's budget "
                "lease in memory; its usage record (PutItem) is written after the answer has been sent, "
                "and the lease's flushes and renewals (TransactWriteItems) are shared by the calls of "
                "half a minute (docs/decisions/0019-budget-leases.md). LiteLLM in this configuration "
                "makes none.\n\n"
            )

        w(
            f"Cold start per handler (fresh process, median of {self.sizes.cold_runs}; import = importing "
            "functions/<name>/app.py with the layer on sys.path; first call = the first invocation in that "
            "process, DynamoDB Local behind it; CPU = process_time of the same span, which a busy machine "
            "inflates far less than wall time; process = whole `python -S -c` wall time; peak RSS = "
            "ru_maxrss after the first call):\n\n"
        )
        w(
            "| function | layer | first request | import ms | import CPU ms | first call ms "
            "| first call CPU ms | process ms | peak RSS MiB | status |\n"
        )
        w("|---|---|---|---|---|---|---|---|---|---|\n")
        for c in self.cold:
            w(
                f"| {c.function} | {c.mode} | {c.route} | {c.import_ms:.0f} | {c.import_cpu_ms:.0f} | "
                f"{c.first_ms:.0f} | {c.first_cpu_ms:.0f} | {c.process_ms:.0f} | {c.maxrss_mb:.0f} | "
                f"{c.status} |\n"
            )
        w("\n`sam build` artifacts (.aws-sam/build; zipped = deflate, as uploaded):\n\n")
        w("| artifact | files | unzipped MiB | zipped MiB |\n|---|---|---|---|\n")
        for p in self.packages:
            w(f"| {p.name} | {p.files} | {p.unzipped / 2**20:.2f} | {p.zipped / 2**20:.2f} |\n")
        w("\nTargets:\n\n| target | measured | verdict |\n|---|---|---|\n")
        limit = TARGET_ADDED_LATENCY_RATIO
        latency_ok = None if added_ratio != added_ratio else added_ratio <= limit
        w(
            f"| added latency at most {limit:g} x LiteLLM's (p50) | {_ms(added_ratio)} | "
            f"{_verdict(latency_ok)} |\n"
        )
        limit95 = TARGET_ADDED_LATENCY_RATIO_P95
        latency95_ok = None if added_ratio_95 != added_ratio_95 else added_ratio_95 <= limit95
        w(
            f"| added latency at most {limit95:g} x LiteLLM's (p95) | {_ms(added_ratio_95)} | "
            f"{_verdict(latency95_ok)} |\n"
        )
        ddb_ok = None if per_call != per_call else per_call <= TARGET_DDB_PER_CALL
        w(
            f"| at most {TARGET_DDB_PER_CALL:g} DynamoDB requests per call (cached key) | {_ms(per_call)} | "
            f"{_verdict(ddb_ok)} |\n"
        )
        shipped = [c for c in self.cold if c.mode == "bytecode"]  # what layers/core/Makefile builds
        worst = max((c.import_ms for c in shipped), default=float("nan"))
        worst_cpu = max((c.import_cpu_ms for c in shipped), default=float("nan"))
        w(
            f"| handler cold import under {TARGET_COLD_IMPORT_MS:g} ms (wall) | worst {_ms(worst)} | "
            f"{_verdict(None if worst != worst else worst < TARGET_COLD_IMPORT_MS)} |\n"
        )
        w(
            f"| same, CPU time (what an idle machine would take) | worst {_ms(worst_cpu)} | "
            f"{_verdict(None if worst_cpu != worst_cpu else worst_cpu < TARGET_COLD_IMPORT_MS)} |\n"
        )
        for note in self.notes:
            w(f"\nNote: {note}\n")
        return out.getvalue()


def _code_version() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("log", "-1", "--format=%h %s") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "layers", "functions", "local")
    return f"commit {commit}" + (" plus uncommitted changes" if dirty else "")


HISTORY = "# History\n"


def write_results(report: Report, path: Path) -> None:
    """The new run on top; the run it replaces moves to the history below, which is kept."""
    stamp = report.started.strftime("%Y-%m-%d %H:%M UTC")
    body = report.render()
    header = (
        "# Benchmark results\n\n"
        "Produced by `make bench` (bench/run.py); method and caveats in docs/bench.md. "
        "The latest run comes first; earlier runs are kept under History, newest first.\n\n"
    )
    history = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        latest, _, kept = old.partition(HISTORY)
        previous = latest[latest.find("\n## ") + 1 :] if "\n## " in latest else ""
        history = HISTORY + "\n" + previous.rstrip() + "\n\n" + kept.lstrip()
    path.write_text(f"{header}## {stamp}\n\n{body}\n{history}".rstrip() + "\n", encoding="utf-8")


@contextmanager
def _step(name: str, notes: list[str]) -> Iterator[None]:
    print(f"- {name}", flush=True)
    try:
        yield
    except Exception as exc:
        notes.append(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
        print(f"  failed: {exc}", flush=True)


def cache_hit_latency(target: Target, requests: int) -> tuple[float, float]:
    """p50 and p95 (ms) of a request answered from the response cache: the same request, opted
    in by header, after one call has filled the entry. The vendor is never reached."""
    body = json.dumps(
        {"model": target.model, "messages": [{"role": "user", "content": "cached?"}], "temperature": 0}
    )
    headers = {
        "Authorization": f"Bearer {target.api_key}",
        "Content-Type": "application/json",
        "x-aigw-cache": "on",
    }
    connection = target.connection()
    timings: list[float] = []
    for n in range(requests + 1):
        started = time.perf_counter()
        connection.request("POST", target.path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        if n and answer.getheader("x-aigw-cache") == "hit":
            timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    timings.sort()
    if not timings:
        return float("nan"), float("nan")
    return timings[len(timings) // 2], timings[min(len(timings) - 1, int(len(timings) * 0.95))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for trying the bench out")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no install, no comparison)")
    parser.add_argument("--no-build", action="store_true", help="reuse .aws-sam/build instead of sam build")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    WORK.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    # Shared machines make numbers noisy; the report says how busy this one was.
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    procs = Processes()
    notes: list[str] = []
    results: list[TargetResult] = []
    ddb_counts: dict[str, float] | None = None
    cold: list[ColdStart] = []
    cache_hit: tuple[float, float] | None = None
    packages: list[PackageSize] = []
    litellm_mode, litellm_version = "not run", ""
    db = DynamoDBLocal()
    try:
        print(
            "- starting the fake upstream, DynamoDB Local, a counting proxy and two local runners", flush=True
        )
        upstream = start_upstream(procs)
        db.start()
        ensure_table(db.endpoint, TABLE_NAME)
        counter = start_counter(procs, db.endpoint)
        gateway = start_runner(procs, db.endpoint, upstream, WORK / "runner.log")
        # The request path only: the stream consumers' reads and writes (report aggregates,
        # docs/decisions/0011) are off it and would be counted per second, not per call.
        # One worker: the warm-up and the counted calls reach the same process, so the key and
        # the billing state are in its cache ("the hot path of a cached key"); with several,
        # the counted calls could land on a worker whose caches the warm-up never filled.
        counted = start_runner(
            procs, counter, upstream, WORK / "runner-counted.log", streams=False, workers=1
        )
        targets = [
            Target("direct", upstream + "/v1", "sk-fake-upstream", "gpt-4o-mini"),
            Target("aigw", gateway.base_url + "/v1", gateway.team_key, "openai/gpt-4o-mini"),
        ]
        if not args.no_litellm:
            with _step("starting LiteLLM proxy", notes):
                proxy = litellm_proxy.start(upstream + "/v1", free_port(), WORK / "litellm.log")
                procs.add(proxy.process)
                litellm_mode, litellm_version = proxy.mode, proxy.version
                targets.append(Target("litellm", proxy.base_url, proxy.api_key, litellm_proxy.MODEL))
        print("- latency, throughput and streaming", flush=True)
        results = measure_targets(targets, sizes)
        with _step("response cache hits", notes):
            cache_hit = cache_hit_latency(targets[1], sizes.latency_requests // ROUNDS)
        with _step("counting DynamoDB requests", notes):
            ddb_counts = count_dynamodb(counted, counter, sizes.ddb_calls)
        with _step("cold starts", notes):
            cold = cold_starts(db.endpoint, gateway.admin_key, sizes.cold_runs)
        with _step("package sizes", notes):
            packages = package_sizes(build=not args.no_build)
    finally:
        procs.stop_all()
        db.stop()
    levels: list[wcu.Level] | None = None
    print("- DynamoDB write units per call at 1 and 64 in flight", flush=True)
    with _step("write units per call", notes):
        levels = wcu.measure_all(
            workers=sizes.wcu_workers, calls=sizes.wcu_calls, concurrent_calls=sizes.wcu_concurrent_calls
        )
    report = Report(
        started,
        sizes,
        results,
        litellm_mode,
        litellm_version,
        ddb_counts,
        cold,
        packages,
        notes,
        load,
        cache_hit,
        levels,
    )
    text = report.render()
    print("\n" + text)
    write_results(report, args.output)
    print(f"written to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
