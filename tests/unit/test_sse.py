from __future__ import annotations

from aigw import sse


def test_parser_follows_the_event_stream_rules() -> None:
    lines = [
        ": keep-alive comment",
        "event: delta",
        'data: {"a":',
        "data: 1}",
        "",
        "data: [DONE]",
        "",
        "data: tail",
    ]
    events = list(sse.parse(lines))
    assert events == [
        sse.Event("delta", '{"a":\n1}'),
        sse.Event("message", "[DONE]"),
        sse.Event("message", "tail"),
    ]


def test_encoder_writes_one_event_per_payload() -> None:
    assert sse.encode({"type": "ping"}, "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse.encode({"x": 1}) == b'data: {"x":1}\n\n'
