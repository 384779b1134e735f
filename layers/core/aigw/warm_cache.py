"""A container's copy of what every call reads: API keys, plans, the catalog's overrides, a
team's response-cache setting.

An entry is served while it is younger than its TTL, and read again after an answer once it is
half that old (:func:`aigw.request_context.after_answer`): a busy container's calls never wait
for the table, and a change (a revoked key, a new override) still reaches every container within
the TTL. Only a container idle for longer than the TTL reads on a caller's path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from aigw import clock, request_context


class WarmCache[K: Hashable, V]:
    """``load`` reads one entry from the table; ``ttl`` says for how long (seconds, 0 = never
    keep). Thread-safe: the local runner serves calls in threads."""

    def __init__(
        self, load: Callable[[K], V], ttl: Callable[[], float], *, max_entries: int = 10_000
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._due: set[K] = set()  # read-aheads already scheduled
        # Bumped by forget and clear: a read that began before is not kept (it may predate the
        # change that made the caller forget, a revocation for instance).
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        ttl = self._ttl()
        if ttl <= 0:
            return self._load(key)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            age = clock.monotonic() - entry[0]
            if age < ttl:
                if age >= ttl / 2:
                    self._read_ahead(key)
                return entry[1]
        return self.refresh(key)

    def refresh(self, key: K) -> V:
        """Read the entry from the table now and keep it."""
        generation = self._generation
        try:
            value = self._load(key)
        finally:
            with self._lock:
                self._due.discard(key)
        with self._lock:
            if generation == self._generation:
                self._keep(key, value)
        return value

    def _keep(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max and key not in self._entries:
            self._entries.clear()
        self._entries[key] = (clock.monotonic(), value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._due.clear()
            self._generation += 1

    def _read_ahead(self, key: K) -> None:
        with self._lock:
            if key in self._due:
                return
            self._due.add(key)
        if not request_context.after_answer(lambda: self._reread(key)):
            with self._lock:
                self._due.discard(key)

    def _reread(self, key: K) -> None:
        self.refresh(key)
