"""The simulator's Stripe account: objects, events and notifications in one SQLite file.

SQLite because the runner may serve from several processes (``--workers``): a Checkout session
created through one process is paid through another. Each call opens its own connection (no
connection crosses a fork); a flow that changes several objects runs in one ``BEGIN IMMEDIATE``
transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_kind ON objects (kind);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    customer TEXT,
    body TEXT NOT NULL,
    status INTEGER,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id TEXT,
    detail_type TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Delivery:
    """One event as sent to the gateway's webhook, and what the gateway answered."""

    seq: int
    event: Obj
    status: int | None
    outcome: str | None

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            tx = Tx(db)
            yield tx
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def get(self, object_id: str) -> Obj | None:
        with self.transaction() as tx:
            return tx.get(object_id)

    def all(self, kind: str) -> list[Obj]:
        with self.transaction() as tx:
            return tx.all(kind)

    # ---- events -----------------------------------------------------------------------------

    def record_delivery(self, event_id: str, status: int | None, outcome: str | None) -> None:
        with contextlib.closing(self._connect()) as db:
            db.execute("UPDATE events SET status = ?, outcome = ? WHERE id = ?", (status, outcome, event_id))

    def deliveries(self, *, customer: str | None = None, limit: int = 50) -> list[Delivery]:
        query = "SELECT seq, body, status, outcome FROM events"
        params: tuple[Any, ...] = ()
        if customer is not None:
            query += " WHERE customer = ?"
            params = (customer,)
        query += " ORDER BY seq DESC LIMIT ?"
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(query, (*params, limit)).fetchall()
        return [Delivery(seq, json.loads(body), status, outcome) for seq, body, status, outcome in rows]

    def delivery(self, event_id: str) -> Delivery | None:
        with contextlib.closing(self._connect()) as db:
            row = db.execute(
                "SELECT seq, body, status, outcome FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        return Delivery(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    # ---- notifications (the EventBridge stand-in) -------------------------------------------

    def add_notification(self, team_id: str | None, detail_type: str, detail: Obj) -> None:
        with contextlib.closing(self._connect()) as db:
            db.execute(
                "INSERT INTO notifications (team_id, detail_type, detail) VALUES (?, ?, ?)",
                (team_id, detail_type, json.dumps(detail)),
            )

    def notifications(self, *, team_id: str | None = None, limit: int = 30) -> list[tuple[str, Obj]]:
        query = "SELECT detail_type, detail FROM notifications"
        params: tuple[Any, ...] = ()
        if team_id is not None:
            query += " WHERE team_id = ?"
            params = (team_id,)
        query += " ORDER BY seq DESC LIMIT ?"
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(query, (*params, limit)).fetchall()
        return [(kind, json.loads(detail)) for kind, detail in rows]


class Tx:
    """Reads and writes inside one transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, object_id: str) -> Obj | None:
        row = self._db.execute("SELECT body FROM objects WHERE id = ?", (object_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def require(self, object_id: str) -> Obj:
        found = self.get(object_id)
        if found is None:
            raise KeyError(object_id)
        return found

    def all(self, kind: str) -> list[Obj]:
        rows = self._db.execute("SELECT body FROM objects WHERE kind = ? ORDER BY rowid", (kind,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def put(self, obj: Obj) -> Obj:
        self._db.execute(
            "INSERT INTO objects (id, kind, body) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            (obj["id"], obj["object"], json.dumps(obj)),
        )
        return obj

    def add_event(self, event: Obj, customer: str | None) -> None:
        self._db.execute(
            "INSERT INTO events (id, type, customer, body) VALUES (?, ?, ?, ?)",
            (event["id"], event["type"], customer, json.dumps(event)),
        )
