"""The bench's fake OpenAI-compatible upstream: one process on loopback, fixed small latency.

``python bench/upstream.py --port N --latency-ms 2`` serves ``POST /v1/chat/completions`` (and
``/chat/completions``) as OpenAI documents it: a ``chat.completion`` object, or with
``"stream": true`` server-sent ``chat.completion.chunk`` events ending in ``data: [DONE]``.
Every target of the bench (direct, aigw, LiteLLM) talks to this same server, so differences
in the numbers are what sits in front of it.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT = "The quick brown fox jumps over the lazy dog."
STREAM_CHUNKS = 8


def completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22},
    }


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def make_handler(latency: float, chunk_gap: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle and the peer's
        # delayed ACK add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                request = json.loads(raw)
            except ValueError:
                self._json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
                return
            model = str(request.get("model", "gpt-4o-mini"))
            time.sleep(latency)
            if request.get("stream"):
                self._stream(model, bool((request.get("stream_options") or {}).get("include_usage")))
            else:
                self._json(200, completion(model))

        def _json(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, model: str, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            words = CONTENT.split(" ")
            events = [chunk(model, {"role": "assistant", "content": ""})]
            per = max(1, len(words) // STREAM_CHUNKS)
            for i in range(0, len(words), per):
                events.append(chunk(model, {"content": " ".join(words[i : i + per]) + " "}))
            events.append(chunk(model, {}, "stop"))
            if include_usage:
                usage = completion(model)["usage"]
                body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                        "model": model, "choices": [], "usage": usage}  # fmt: skip
                events.append(f"data: {json.dumps(body)}\n\n".encode())
            events.append(b"data: [DONE]\n\n")
            try:
                for index, event in enumerate(events):
                    if index:
                        time.sleep(chunk_gap)
                    self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--chunk-gap-ms", type=float, default=1.0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(args.latency_ms / 1000, args.chunk_gap_ms / 1000)
    )
    server.daemon_threads = True
    server.request_queue_size = 256
    print(f"upstream ready on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
