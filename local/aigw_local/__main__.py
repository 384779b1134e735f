"""``python -m aigw_local``: the gateway on http://127.0.0.1:3000 with DynamoDB Local behind it."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError

from aigw_local import streams
from aigw_local import template as tpl
from aigw_local.dynamodb_local import DynamoDBLocal, DynamoDBLocalError, ensure_table, port_in_use
from aigw_local.runner import (
    DEMO_KEYS_FILE,
    LOCAL_DIR,
    TABLE_NAME,
    LocalServices,
    local_environment,
    local_services,
    seed_demo,
)
from aigw_local.server import Gateway, Mount, fork_workers, make_server, stop_workers


class StartupError(Exception):
    """Why the runner cannot start, in one line; nothing has been left running."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aigw_local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "3000")),
        help="port (default: $PORT, else 3000)",
    )
    parser.add_argument(
        "--dynamodb-port",
        type=int,
        default=int(os.environ.get("DYNAMODB_PORT", "0")) or None,
        help="port of the DynamoDB Local it starts (default: $DYNAMODB_PORT, else a free one)",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        default=os.environ.get("AIGW_DYNAMODB_ENDPOINT") or None,
        help="use a DynamoDB (Local) already running there instead of starting one",
    )
    parser.add_argument("--in-memory", action="store_true", help="keep no data between runs")
    parser.add_argument("--data-dir", type=Path, default=LOCAL_DIR / "dynamodb", help="where data is kept")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except StartupError as exc:
        print(f"aigw: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: what was started has been stopped
        return 130


def run(args: argparse.Namespace) -> int:
    template = tpl.load()
    log = None if args.quiet else _log
    gateway = Gateway(tpl.routes(template), log=log)
    mounts: dict[str, Mount] = {}
    # The port first: nothing is started when the gateway could not listen anyway.
    server = _listen(gateway, args.host, args.port, mounts)
    port = server.server_address[1]
    base = f"http://{args.host}:{port}"
    internal = f"http://{_loopback(args.host)}:{port}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.server_close)
        endpoint = args.dynamodb_endpoint
        db: DynamoDBLocal | None = None
        if endpoint is None:
            if args.dynamodb_port and port_in_use(args.dynamodb_port):
                raise StartupError(
                    f"port {args.dynamodb_port} for DynamoDB Local (DYNAMODB_PORT) is already in use; "
                    "pick another, or leave DYNAMODB_PORT unset for a free one"
                )
            if not args.in_memory:
                cleanup.enter_context(_data_lock(args.data_dir))
            db = DynamoDBLocal(port=args.dynamodb_port, data_dir=None if args.in_memory else args.data_dir)
            print(f"starting DynamoDB Local on {db.endpoint} ...", flush=True)
            try:
                db.start()
            except DynamoDBLocalError as exc:
                raise StartupError(str(exc)) from exc
            cleanup.callback(_stopped, db)
            endpoint = db.endpoint
        try:
            created = ensure_table(endpoint, TABLE_NAME, template)
        except (BotoCoreError, ClientError) as exc:
            raise StartupError(f"cannot use DynamoDB at {endpoint}: {exc}") from exc
        env = local_environment(template, table_name=TABLE_NAME, endpoint=endpoint)
        state = _state_file(args, cleanup)
        services = local_services(env, internal_base=internal, state_file=state, log=log)
        os.environ.update({**env, **services.environment})
        demo = seed_demo(None if args.in_memory else DEMO_KEYS_FILE, force=created)
        gateway.preload()
        mounts.update(services.mounts)
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
            log=log,
        )
        _banner(base, demo.admin_key, demo.team_key, gateway, endpoint, db, services)

        def _stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        server.serve_forever(poll_interval=0.2)
        gateway.drain()  # settles deferred after the last answers are written before we go
        stop_workers(workers)
        stream_runner.stop()
    return 0


def _listen(gateway: Gateway, host: str, port: int, mounts: dict[str, Mount]) -> ThreadingHTTPServer:
    try:
        return make_server(gateway, host, port, mounts)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another 'make dev'?); stop it, or pick another "
                f"port: PORT={port + 1} make dev"
            ) from exc
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _data_lock(data_dir: Path) -> Iterator[IO[str]]:
    """One runner per data directory: two DynamoDB Locals on the same files would corrupt them."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (data_dir / ".runner.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise StartupError(
            f"another local runner is using {data_dir}; stop it first, or run with --in-memory"
        ) from exc
    try:
        yield handle
    finally:
        handle.close()


def _state_file(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> Path:
    """Where the Stripe simulator and the notifications are kept: next to the table's data, or
    in a temporary directory for --in-memory runs."""
    if args.in_memory:
        return (
            Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="aigw-local-")))
            / "services.sqlite3"
        )
    return LOCAL_DIR / "services.sqlite3"


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "localhost") else host  # noqa: S104 - compared, not bound


def _stopped(db: DynamoDBLocal) -> None:
    db.stop()
    print("stopped.", flush=True)


def reset_table_client() -> None:
    from aigw import table

    table.reset()


def _log(line: str) -> None:
    print(line, flush=True)


def _banner(
    base: str,
    admin_key: str,
    team_key: str,
    gateway: Gateway,
    endpoint: str,
    db: DynamoDBLocal | None,
    services: LocalServices,
) -> None:
    routes = "\n".join(f"  {r.method:6} {r.path}" for r in gateway.routes)
    if db is None:
        dynamodb = f"{endpoint} (table {TABLE_NAME}; --dynamodb-endpoint)"
    elif db.loopback_only:
        dynamodb = f"{endpoint} (table {TABLE_NAME}; listening on 127.0.0.1 only)"
    else:
        dynamodb = (
            f"{endpoint} (table {TABLE_NAME}). WARNING: this Java cannot compile the loopback launcher, so "
            f"DynamoDB Local listens on every interface and accepts any credentials: firewall port {db.port}"
        )
    if services.stripe_simulated:
        stripe = (
            f"simulated at {base}/_stripe/ (no STRIPE_API_KEY): 402 fix links and the portal's billing "
            "buttons open its Checkout and customer portal; what you pick there is sent to this gateway as "
            "Stripe's signed webhook events"
        )
    else:
        stripe = (
            "Stripe's API with your STRIPE_API_KEY; forward its webhooks here with: "
            f"stripe listen --forward-to {base}/webhooks/stripe"
        )
        if os.environ.get("STRIPE_WEBHOOK_SECRET", "").startswith("whsec_local_"):
            stripe += " (and put the whsec_ it prints in .env.local as STRIPE_WEBHOOK_SECRET)"
    print(
        f"""
aigw local runner listening on {base}
routes (from template.yaml):
{routes}

demo admin key:  {admin_key}
demo team key:   {team_key}

portal:          {base}/portal  (sign in with a key above)
DynamoDB Local:  {dynamodb}
Stripe:          {stripe}

try it:
  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {team_key}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock/echo", "messages": [{{"role": "user", "content": "Hello"}}]}}'

the CLI (in .venv):
  export AIGW_URL={base} AIGW_ADMIN_KEY={admin_key}
  aigw teams list
  aigw bootstrap --endpoint {endpoint} --table {TABLE_NAME}   # another admin key, straight into DynamoDB
Ctrl-C stops the gateway and DynamoDB Local.
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
