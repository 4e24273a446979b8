"""SQLite ledger of the RecordCleaned event ids whose rows were pushed: how redelivery is recognised.

The ledger and the feature store are two systems, so "pushed" and "recorded" cannot share one
transaction. The handler pushes first and records after, so a crash in between re-pushes the same
rows on redelivery (at-least-once): the online store upserts them (no effect) and the offline store
gets identical duplicate rows (same entity, same event time, same values), which a point-in-time
join resolves to the same values. Recording first would instead lose rows on such a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from servicekit.sqlite import SqliteDatabase

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pushed ("
    " event_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL, pushed_at TEXT NOT NULL)",
)


class PushLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = SqliteDatabase(path, SCHEMA)  # opened on first use: building the app touches no disk

    def unseen(self, event_ids: Iterable[str]) -> set[str]:
        """The ids among `event_ids` that were never recorded."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return set()
        seen = set()
        with self.db.connection() as db:
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT event_id FROM pushed WHERE event_id IN ({marks})"
                seen |= {row[0] for row in db.execute(query, chunk)}
        return set(ids) - seen

    def record(self, pushed: Iterable[tuple[str, str]]) -> None:
        """Record (event_id, entity_id) pairs in one transaction."""
        now = datetime.now(UTC).isoformat()
        with self.db.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO pushed (event_id, entity_id, pushed_at) VALUES (?, ?, ?)",
                [(event_id, entity_id, now) for event_id, entity_id in pushed],
            )

    def count(self) -> int:
        with self.db.connection() as db:
            return int(db.execute("SELECT COUNT(*) FROM pushed").fetchone()[0])

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()
