"""``python -m aigw_local``: the gateway on http://127.0.0.1:3000 with DynamoDB Local behind it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from aigw_local import streams
from aigw_local import template as tpl
from aigw_local.dynamodb_local import DynamoDBLocal, ensure_table
from aigw_local.runner import DEMO_KEYS_FILE, LOCAL_DIR, TABLE_NAME, local_environment, seed_demo
from aigw_local.server import Gateway, fork_workers, make_server, stop_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigw_local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument(
        "--dynamodb-port", type=int, default=int(os.environ.get("DYNAMODB_PORT", "0")) or None
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        default=os.environ.get("AIGW_DYNAMODB_ENDPOINT") or None,
        help="use a DynamoDB (Local) already running there instead of starting one",
    )
    parser.add_argument("--in-memory", action="store_true", help="keep no data between runs")
    parser.add_argument("--data-dir", type=Path, default=LOCAL_DIR / "dynamodb")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("AIGW_WORKERS", "1")),
        help="processes serving requests, like warm Lambda containers: each runs one invocation at a "
        "time and keeps its own caches (default 1)",
    )
    parser.add_argument(
        "--stream-poll-interval",
        type=float,
        default=float(os.environ.get("AIGW_STREAM_POLL_SECONDS", streams.DEFAULT_POLL_SECONDS)),
        help="seconds between reads of the table stream for the DynamoDB event sources (default 0.1; "
        "0 turns them off: no report aggregates, no meter reporting)",
    )
    args = parser.parse_args(argv)

    template = tpl.load()
    db = DynamoDBLocal(port=args.dynamodb_port, data_dir=None if args.in_memory else args.data_dir)
    endpoint = args.dynamodb_endpoint
    if endpoint is None:
        print(f"starting DynamoDB Local on {db.endpoint} ...", flush=True)
        db.start()
        endpoint = db.endpoint
    try:
        created = ensure_table(endpoint, TABLE_NAME, template)
        os.environ.update(local_environment(template, table_name=TABLE_NAME, endpoint=endpoint))
        demo = seed_demo(None if args.in_memory else DEMO_KEYS_FILE, force=created)

        gateway = Gateway(tpl.routes(template), log=None if args.quiet else _log)
        gateway.preload()
        server = make_server(gateway, args.host, args.port)
        base = f"http://{args.host}:{server.server_address[1]}"
        # Children get their own DynamoDB client: the one seeding used holds the parent's sockets.
        workers = fork_workers(
            server, max(0, args.workers - 1), on_start=reset_table_client, on_stop=gateway.drain
        )
        # One poller for the whole runner, in this process (started after the fork: no thread
        # crosses it); its invocations share the routes' one-at-a-time lock.
        stream_runner = streams.start(
            template if args.stream_poll_interval > 0 else {},
            endpoint=endpoint,
            table_name=TABLE_NAME,
            handler_for=gateway.handler_for,
            lock=gateway.invocation_lock,
            interval=args.stream_poll_interval,
            log=None if args.quiet else _log,
        )
        _banner(base, demo.admin_key, demo.team_key, gateway)

        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        server.serve_forever(poll_interval=0.2)
        gateway.drain()  # settles deferred after the last answers are written before we go
        stop_workers(workers)
        stream_runner.stop()
        server.server_close()
    finally:
        db.stop()
        print("stopped.", flush=True)
    return 0


def reset_table_client() -> None:
    from aigw import table

    table.reset()


def _log(line: str) -> None:
    print(line, flush=True)


def _banner(base: str, admin_key: str, team_key: str, gateway: Gateway) -> None:
    routes = "\n".join(f"  {r.method:6} {r.path}" for r in gateway.routes)
    print(
        f"""
aigw local runner listening on {base}
routes (from template.yaml):
{routes}

demo admin key:  {admin_key}
demo team key:   {team_key}

try it:
  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {team_key}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock/echo", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  export AIGW_ADMIN_KEY={admin_key}
  aigw teams list
Ctrl-C stops the gateway and DynamoDB Local.
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
