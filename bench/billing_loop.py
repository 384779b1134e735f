"""How long the local billing loop takes to give access back (issue 16: "within a second").

    python bench/billing_loop.py              # 20 teams, one after the other
    python bench/billing_loop.py --teams 50

Starts the local runner (no STRIPE_API_KEY: the Stripe simulator), puts each team on a plan with
no tokens left, and for each: the 402's fix link, the simulated Checkout page, "Pay" with the
4242 card (the simulator sends the 14 webhook events of a Checkout subscription to the gateway
before it redirects), then the team's next call. Prints, per team and as percentiles, the time
of the Pay request and the time from Pay to the first successful call. Numbers, not
assertions: on a shared machine they vary with its load (printed with them).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hello"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "aigw_local", "--in-memory", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PORT": str(port), "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
    )
    assert process.stdout is not None
    admin = ""
    for line in process.stdout:
        found = re.match(r"demo admin key:\s+(\S+)", line)
        admin = found.group(1) if found else admin
        if line.startswith("Ctrl-C stops"):
            return process, admin
    raise RuntimeError("the runner did not start")


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.0f} ms, p95 {p95:.0f} ms, max {ordered[-1]:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/billing_loop.py", description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=20)
    args = parser.parse_args(argv)
    port = _free_port()
    process, admin_key = _start(port)
    base = f"http://127.0.0.1:{port}"
    pay_ms: list[float] = []
    access_ms: list[float] = []
    try:
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)
        admin.put("/admin/plans/bench-empty", json={"monthly_tokens": 0}).raise_for_status()
        browser = httpx.Client(follow_redirects=False, timeout=60)
        for n in range(args.teams):
            team = f"bench-{n}"
            admin.post("/admin/teams", json={"team_id": team}).raise_for_status()
            admin.put(f"/admin/teams/{team}/plan", json={"plan_id": "bench-empty"}).raise_for_status()
            key = admin.post(f"/admin/teams/{team}/keys", json={}).json()["secret"]
            caller = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            refused = caller.post("/v1/chat/completions", json=CHAT)
            assert refused.status_code == 402, refused.text
            checkout = browser.get(refused.json()["fix_url"]).headers["Location"]
            browser.get(checkout).raise_for_status()
            started = time.perf_counter()
            paid = browser.post(checkout, data={"email": f"{team}@bench.test", "card": "4242424242424242"})
            pay_ms.append((time.perf_counter() - started) * 1000)
            assert paid.status_code == 303, paid.text
            while caller.post("/v1/chat/completions", json=CHAT).status_code != 200:
                time.sleep(0.01)
            access_ms.append((time.perf_counter() - started) * 1000)
            print(f"{team}: pay {pay_ms[-1]:.0f} ms, access back after {access_ms[-1]:.0f} ms", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.teams} teams; load average {load}")
    print(f"Pay (14 webhook events delivered before the redirect): {_percentiles(pay_ms)}")
    print(f"Pay to the first successful call:                      {_percentiles(access_ms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
