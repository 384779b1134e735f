"""LiteLLM proxy for the comparison: its own virtualenv (installed from PyPI when missing),
configured in front of the same fake upstream, started on loopback and stopped by the bench.

Virtual keys with budgets need LiteLLM's database (Postgres through Prisma). Prisma's query
and schema engines are downloaded from binaries.prisma.sh at first use, not from PyPI or npm,
so on a machine that only reaches package registries they cannot be had and LiteLLM cannot
start with a database. :func:`prisma_engines_available` checks that first; without engines the
proxy runs in its closest database-free configuration: a master key for authentication, a
proxy-wide ``max_budget`` and a per-deployment ``rpm`` limit (in memory). The bench reports
which mode ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-litellm"
WORK = BENCH / ".work"
LITELLM_REQUIREMENT = "litellm[proxy]==1.108.7"
# LiteLLM's database client (its "extra-proxy" extra, without the cloud SDKs that extra adds):
# installed so the bench really tries the virtual-key mode the issue asks for.
PRISMA_REQUIREMENT = "prisma>=0.11.0,<1.0"
MASTER_KEY = "sk-bench-master"  # loopback only; LiteLLM wants an sk- prefix
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class LiteLLM:
    base_url: str
    api_key: str
    mode: str
    process: subprocess.Popen[bytes]
    version: str


def _python_for_venv() -> str:
    # LiteLLM's dependency set installs cleanly on 3.12; fall back to whatever runs the bench.
    for candidate in (
        Path.home() / ".pyenv/versions/3.12.1/bin/python3.12",
        Path("/usr/bin/python3.12"),
        Path("/usr/local/bin/python3.12"),
    ):
        if candidate.exists():
            return str(candidate)
    return sys.executable


def _pip_install(requirement: str, log: Path, *, timeout: float) -> None:
    with log.open("ab") as out:
        subprocess.run(
            [str(VENV / "bin/pip"), "install", "-q", "--disable-pip-version-check", requirement],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )


def ensure_installed(log: Path) -> str:
    """LiteLLM's version, installing it into bench/.venv-litellm first if it is not there."""
    litellm = VENV / "bin" / "litellm"
    if not litellm.exists():
        print(f"  installing {LITELLM_REQUIREMENT} into {VENV} (first run only) ...", flush=True)
        subprocess.run([_python_for_venv(), "-m", "venv", str(VENV)], check=True)
        _pip_install(LITELLM_REQUIREMENT, log, timeout=1200)
    if not (VENV / "bin" / "prisma").exists():
        _pip_install(PRISMA_REQUIREMENT, log, timeout=600)
    result = subprocess.run(
        [str(VENV / "bin/python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def prisma_engines_available(log: Path) -> tuple[bool, str]:
    """Whether Prisma can run (its CLI and engines present or downloadable), with the reason."""
    prisma = VENV / "bin" / "prisma"
    if not prisma.exists():
        return False, "the prisma package is not installed"
    try:
        result = subprocess.run(
            [str(prisma), "--version"], capture_output=True, text=True, timeout=180, cwd=WORK
        )
    except subprocess.TimeoutExpired:
        return False, "prisma --version timed out"
    with log.open("a") as out:
        out.write(result.stdout + result.stderr)
    if result.returncode == 0:
        return True, "prisma engines present"
    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["unknown"]
    return False, last[0][:200]


def _config(upstream_v1: str) -> str:
    return f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {upstream_v1}
      api_key: sk-fake-upstream
      rpm: 1000000
litellm_settings:
  max_budget: 1000
  telemetry: false
general_settings:
  master_key: {MASTER_KEY}
"""


def start(upstream_v1: str, port: int, log: Path, timeout: float = 180.0) -> LiteLLM:
    version = ensure_installed(log)
    engines, why = prisma_engines_available(log)
    # Without Prisma engines LiteLLM cannot use a database, hence no virtual keys (see module doc).
    reason = "Prisma works, but the database mode is not wired into this bench" if engines else why
    mode = f"master key + proxy max_budget + rpm limit, no database (no virtual keys: {reason})"
    config = WORK / "litellm.yaml"
    config.write_text(_config(upstream_v1), encoding="utf-8")
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list from GitHub
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    }
    env.pop("DATABASE_URL", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(VENV / "bin/litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=WORK,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LiteLLM exited at start; see {log}")
        try:
            if httpx.get(base + "/health/liveliness", timeout=2).status_code == 200:
                return LiteLLM(base + "/v1", MASTER_KEY, mode, process, version)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"LiteLLM did not answer within {timeout:.0f}s; see {log}")
