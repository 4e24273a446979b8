"""SQLite ledger of the RecordCleaned event ids whose rows were pushed: how redelivery is recognised.

The ledger and the feature store are two systems, so "pushed" and "recorded" cannot share one
transaction. The handler pushes first and records after, so a crash in between re-pushes the same
rows on redelivery (at-least-once): the online store upserts them (no effect) and the offline store
gets identical duplicate rows (same entity, same event time, same values), which a point-in-time
join resolves to the same values. Recording first would instead lose rows on such a crash.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path


class PushLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """Opened on first use, so building the app touches no disk."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS pushed ("
                " event_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL, pushed_at TEXT NOT NULL)"
            )
            self._conn = conn
        return self._conn

    def unseen(self, event_ids: Iterable[str]) -> set[str]:
        """The ids among `event_ids` that were never recorded."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return set()
        with self._lock:
            seen = set()
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT event_id FROM pushed WHERE event_id IN ({marks})"
                seen |= {row[0] for row in self._db.execute(query, chunk)}
        return set(ids) - seen

    def record(self, pushed: Iterable[tuple[str, str]]) -> None:
        """Record (event_id, entity_id) pairs in one transaction."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO pushed (event_id, entity_id, pushed_at) VALUES (?, ?, ?)",
                [(event_id, entity_id, now) for event_id, entity_id in pushed],
            )
            self._db.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM pushed").fetchone()[0])

    def ping(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1").fetchone() == (1,)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
