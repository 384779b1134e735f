"""Cold starts as Lambda runs them: a fresh process started the way Lambda starts the function,
talking to a Runtime API on loopback (the strict one the tests use), from ``exec`` to its first
``GET /runtime/invocation/next`` (the init phase: interpreter, runtime loop, handler module) and
on to its second one (the first invocation, deferred work included).

- Streaming functions (``AWS_LAMBDA_EXEC_WRAPPER`` in template.yaml): exactly Lambda's command,
  ``<layer>/aigw/bin/streaming-runtime <python> /var/runtime/bootstrap.py``; the wrapper runs
  ``aigw.lambda_runtime`` with that interpreter.
- Other functions run Lambda's stock Python runtime (``/var/runtime/bootstrap.py``), which is
  not available here: the pieces of the same loop stand in for it (``STOCK``: standard library
  only, as the stock one mostly is; without the wrapper's logging set-up and garbage-collector
  freeze, which the stock runtime does not do). Marked "stock*".

The interpreter is a venv of this machine's python3.13 with nothing installed (Lambda's
/var/lang python has its own site-packages, shadowed by the layer on PYTHONPATH). CPU is the
process's time on CPU as the kernel counts it (/proc/<pid>/schedstat, every thread), read when
the request arrives: the shell that execs Python, interpreter start-up and site included.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "local"), str(ROOT / "layers/core")]

from aigw_local import template as tpl  # noqa: E402
from tests.helpers.runtime_api import StrictRuntimeApi  # noqa: E402

WORK = BENCH / ".work"
STOCK = (
    "import os\n"
    "from aigw import lambda_runtime as loop\n"
    "api = loop.RuntimeApi(os.environ['AWS_LAMBDA_RUNTIME_API'])\n"
    "loop.Runtime(api, loop.load_handler(os.environ['_HANDLER'], os.environ['LAMBDA_TASK_ROOT'])).run()\n"
)


@dataclass(frozen=True)
class InitSample:
    init_ms: float
    init_cpu_ms: float
    first_ms: float
    first_cpu_ms: float
    status: int


@dataclass(frozen=True)
class LambdaColdStart:
    function: str
    runtime: str  # "aigw loop" (the wrapper) or "stock*" (the loop standing in for the stock runtime)
    mode: str
    route: str
    init_ms: float
    init_cpu_ms: float
    first_ms: float
    first_cpu_ms: float
    status: int
    init_cpu_min_ms: float = 0.0  # the least of the runs: what the code costs when nothing else runs

    @property
    def total_cpu_ms(self) -> float:
        return self.init_cpu_ms + self.first_cpu_ms


def lambda_python() -> Path:
    """python3.13 with an empty site-packages, as a stand-in for Lambda's /var/lang/bin/python."""
    target = WORK / "lambda-python"
    python = target / "bin" / "python3"
    if not python.exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    return python


def cpu_ms(pid: int) -> float:
    """Time the process has spent on CPU so far (all its threads), in ms."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        total = 0
    if total:
        return total / 1e6
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:  # clock ticks: coarser, always there
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def command(spec: tpl.FunctionSpec, layer: Path, python: Path) -> tuple[list[str], str]:
    if spec.environment.get("AWS_LAMBDA_EXEC_WRAPPER"):
        wrapper = layer / "aigw/bin/streaming-runtime"
        return [str(wrapper), str(python), "/var/runtime/bootstrap.py"], "aigw loop"
    return [str(python), "-u", "-c", STOCK], "stock*"


def measure_once(
    spec: tpl.FunctionSpec, event: dict[str, Any], layer: Path, python: Path, env: dict[str, str]
) -> InitSample:
    api = StrictRuntimeApi().start()
    marks: dict[int, tuple[float, float]] = {}
    holder: dict[str, int] = {}
    started = time.perf_counter()

    def on_next(count: int) -> None:
        pid = holder.get("pid")
        if pid is not None:
            marks[count] = ((time.perf_counter() - started) * 1000, cpu_ms(pid))

    api.on_next = on_next
    argv, _ = command(spec, layer, python)
    process_env = {
        **env,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "PYTHONPATH": "" if argv[0] != str(python) else f"{layer}:{spec.code_uri}",
    }
    request_id = api.invoke(event)
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=process_env, cwd=spec.code_uri, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    holder["pid"] = process.pid
    try:
        outcome = api.wait(request_id, timeout=120)
        api.wait_for_next(2, timeout=120)
    except TimeoutError:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"{spec.logical_id} did not start:\n{err.decode()[-2000:]}") from None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        api.stop()
    if api.violations:
        raise RuntimeError(f"{spec.logical_id} broke the Runtime API: {api.violations}")
    if 1 not in marks or 2 not in marks:
        raise RuntimeError(f"{spec.logical_id}: the process was not seen asking for work")
    status = 0
    if outcome.kind == "response":
        status = json.loads(outcome.request.body.partition(b"\x00" * 8)[0]).get("statusCode", 0)
    (init_ms, init_cpu), (done_ms, done_cpu) = marks[1], marks[2]
    return InitSample(init_ms, init_cpu, done_ms - init_ms, done_cpu - init_cpu, status)


def measure(
    spec: tpl.FunctionSpec,
    route: str,
    event: dict[str, Any],
    layer: Path,
    mode: str,
    env: dict[str, str],
    runs: int,
) -> LambdaColdStart:
    python = lambda_python()
    extra = {"PYTHONDONTWRITEBYTECODE": "1"} if mode == "source only" else {}
    samples = [measure_once(spec, event, layer, python, {**env, **extra}) for _ in range(runs)]
    _, runtime = command(spec, layer, python)
    return LambdaColdStart(
        function=spec.logical_id,
        runtime=runtime,
        mode=mode,
        route=route,
        init_ms=statistics.median(s.init_ms for s in samples),
        init_cpu_ms=statistics.median(s.init_cpu_ms for s in samples),
        first_ms=statistics.median(s.first_ms for s in samples),
        first_cpu_ms=statistics.median(s.first_cpu_ms for s in samples),
        status=samples[-1].status,
        init_cpu_min_ms=min(s.init_cpu_ms for s in samples),
    )
