"""A counting HTTP proxy on loopback in front of DynamoDB Local.

``python bench/ddb_counter.py --port N --target http://127.0.0.1:M`` forwards every request
unchanged and counts it by DynamoDB operation (the ``X-Amz-Target`` header, e.g.
``DynamoDB_20120810.PutItem``). ``GET /__counts`` returns the counts as JSON, ``POST /__reset``
zeroes them. It knows nothing of the gateway: whatever the handlers do to DynamoDB (reads,
writes, transactions, reservations added later) is counted the same way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def make_handler(target: str) -> type[BaseHTTPRequestHandler]:
    parts = urlsplit(target)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    local = threading.local()

    def upstream() -> http.client.HTTPConnection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            local.conn = conn
        return conn

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle and the peer's
        # delayed ACK add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/__counts":
                with lock:
                    body = json.dumps(dict(counts)).encode()
                self._reply(200, body, [("Content-Type", "application/json")])
                return
            self._forward()

        def do_POST(self) -> None:
            if self.path == "/__reset":
                with lock:
                    counts.clear()
                self._reply(204, b"", [])
                return
            self._forward()

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            operation = (self.headers.get("X-Amz-Target") or "other").rpartition(".")[2]
            with lock:
                counts[operation] += 1
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            for attempt in (1, 2):
                conn = upstream()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    if attempt == 2:
                        self._reply(502, b"{}", [("Content-Type", "application/json")])
                        return
            self._reply(response.status, payload, response.getheaders())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.target))
    server.daemon_threads = True
    print(f"counter ready on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
