"""The per-container cache of what every call reads (aigw.warm_cache)."""

from __future__ import annotations

import threading

import pytest

from aigw import clock, request_context
from aigw.warm_cache import WarmCache


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    at = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: at[0])
    return at


def test_served_until_half_its_ttl_then_read_again_after_the_answer(now: list[float]) -> None:
    reads: list[str] = []
    cache: WarmCache[str, int] = WarmCache(lambda k: reads.append(k) or len(reads), lambda: 10)
    assert cache.get("a") == 1
    now[0] += 6  # past half the TTL: answered from the copy, read again after the answer
    tasks = request_context.open_deferred()
    assert cache.get("a") == 1
    assert cache.get("a") == 1  # one read-ahead per entry, however many calls ask
    request_context.close_deferred()
    assert reads == ["a"]
    request_context.run_deferred(tasks)
    assert reads == ["a", "a"]
    now[0] += 6  # 12 s after the first read, 6 after the second: still no read on the path
    assert cache.get("a") == 2
    assert reads == ["a", "a"]


def test_without_a_server_to_run_it_later_nothing_is_read_ahead(now: list[float]) -> None:
    reads: list[str] = []
    cache: WarmCache[str, int] = WarmCache(lambda k: reads.append(k) or len(reads), lambda: 10)
    cache.get("a")
    now[0] += 6
    assert cache.get("a") == 1  # no scope open: the next read is the one at the TTL
    now[0] += 5
    assert cache.get("a") == 2
    assert reads == ["a", "a"]


def test_a_read_that_began_before_a_forget_is_not_kept(now: list[float]) -> None:
    started, release = threading.Event(), threading.Event()
    values = iter(["old", "new"])

    def load(_: str) -> str:
        value = next(values)
        if value == "old":
            started.set()
            release.wait(5)
        return value

    cache: WarmCache[str, str] = WarmCache(load, lambda: 10)
    reader = threading.Thread(target=cache.get, args=("k",))
    reader.start()
    started.wait(5)
    cache.forget("k")  # e.g. the key was revoked while the read was under way
    release.set()
    reader.join(5)
    assert cache.get("k") == "new"


def test_a_ttl_of_zero_reads_every_time(now: list[float]) -> None:
    reads: list[str] = []
    cache: WarmCache[str, int] = WarmCache(lambda k: reads.append(k) or len(reads), lambda: 0)
    assert [cache.get("a"), cache.get("a")] == [1, 2]
