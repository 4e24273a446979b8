"""A transactional outbox in a service's SQLite state: an event is written in the same transaction as
the state change that makes it, then published, then marked sent.

So a crash never loses an event (it is still unsent after a restart, and `flush` sends it) and never
doubles one: an event's id is its primary key (`add` of the same id again is a no-op), and a crash
between publish and mark re-sends the same event id, which idempotent consumers drop. An unsent
event may still be withdrawn (`discard`) in a later transaction, e.g. when what made it is overruled,
unless a flush is publishing it at that moment (then it counts as sent). One flush runs at a time, so
concurrent callers never publish the same row twice.

>>> import asyncio
>>> from contracts.events import LabelObserved, LabelObservedPayload
>>> from servicekit.sqlite import SqliteDatabase
>>> sent = []
>>> async def publish(event, topic): sent.append((event.event_type, topic))
>>> outbox = SqliteOutbox(SqliteDatabase(None), publish)
>>> when = "2026-01-01T00:00:00Z"
>>> payload = LabelObservedPayload(dataset="d", entity_id="e", label="good", event_time=when)
>>> event = LabelObserved.create(payload, "doc")
>>> with outbox.transaction() as conn:
...     outbox.add(conn, event), outbox.add(conn, event)
(True, False)
>>> asyncio.run(outbox.flush()), sent, outbox.pending()
(1, [('LabelObserved', 'labels.observed')], 0)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from contracts.envelope import Event
from contracts.registry import encode_event
from servicekit.decoding import decode_event
from servicekit.sqlite import SqliteDatabase

Publish = Callable[[Event[Any], str], Awaitable[None]]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        body BLOB NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL",
)


class SqliteOutbox:
    """Events waiting to be published, in the `outbox` table of `db` (created on first use)."""

    def __init__(self, db: SqliteDatabase, publish: Publish, *, keep_sent: int = 10_000) -> None:
        self.db = db
        self.publish = publish
        self.keep_sent = keep_sent
        self._ready = False
        self._flushing = asyncio.Lock()
        self._in_flight: set[str] = set()  # event ids a flush is publishing now: no longer withdrawable

    def _ensure(self, conn: sqlite3.Connection) -> None:
        if not self._ready:
            for statement in SCHEMA:
                conn.execute(statement)
            self._ready = True

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The database's transaction, with the outbox table ready in it."""
        with self.db.transaction() as conn:
            self._ensure(conn)
            yield conn

    def add(self, conn: sqlite3.Connection, event: Event[Any], topic: str | None = None) -> bool:
        """Queue `event` inside the caller's transaction; False if an event with its id is queued or sent."""
        self._ensure(conn)
        cursor = conn.execute(
            "INSERT OR IGNORE INTO outbox (event_id, topic, body, created_at) VALUES (?, ?, ?, ?)",
            (str(event.event_id), topic or event.topic, encode_event(event), time.time()),
        )
        return cursor.rowcount == 1

    def discard(self, conn: sqlite3.Connection, event_id: str) -> bool:
        """Withdraw an unsent event in the caller's transaction; False if it was sent, is being published
        (or was never queued)."""
        self._ensure(conn)
        if event_id in self._in_flight:
            return False
        cursor = conn.execute("DELETE FROM outbox WHERE event_id = ? AND sent_at IS NULL", (event_id,))
        return cursor.rowcount == 1

    def was_sent(self, event_id: str) -> bool:
        with self.db.connection() as conn:
            self._ensure(conn)
            row = conn.execute("SELECT sent_at FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
        return row is not None and row[0] is not None

    def pending(self) -> int:
        with self.db.connection() as conn:
            self._ensure(conn)
            return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    async def flush(self, limit: int = 500) -> int:
        """Publish unsent events in the order they were queued, each marked sent once Kafka acknowledged
        it; returns how many were sent. A failing publish raises (the rest stay queued for next time)."""
        async with self._flushing:
            with self.db.connection() as conn:
                self._ensure(conn)
                rows = conn.execute(
                    "SELECT seq, topic, body FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit,)
                ).fetchall()
            sent = 0
            for seq, topic, body in rows:
                event = decode_event(bytes(body))
                if not self._claim(seq, str(event.event_id)):
                    continue  # withdrawn since it was read
                try:
                    await self.publish(event, topic)
                    with self.db.connection() as conn:
                        conn.execute("UPDATE outbox SET sent_at = ? WHERE seq = ?", (time.time(), seq))
                finally:
                    self._in_flight.discard(str(event.event_id))
                sent += 1
            if sent:
                self._prune()
            return sent

    def _claim(self, seq: int, event_id: str) -> bool:
        """Mark a row as being published, if it is still queued and unsent (no await in between, so a
        `discard` on the event loop sees either the row or the claim)."""
        with self.db.connection() as conn:
            row = conn.execute("SELECT 1 FROM outbox WHERE seq = ? AND sent_at IS NULL", (seq,)).fetchone()
        if row is None:
            return False
        self._in_flight.add(event_id)
        return True

    def _prune(self) -> None:
        """Keep the ids of the last `keep_sent` sent events (enough to refuse a late duplicate `add`)."""
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND seq <= (SELECT MAX(seq) FROM outbox) - ?",
                (self.keep_sent,),
            )
