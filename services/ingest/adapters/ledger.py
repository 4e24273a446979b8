"""SQLite ledger of what ingest decided about each entity id: how a resend is told from an update.

Two tables. `latest` holds, per dataset and entity id, the content digest of the last record that
went clean and where it was read. `decisions` holds the decision taken for every raw offset that
reached the ledger, so a redelivered offset (a crash between this commit and Kafka's offset commit)
replays the decision it got the first time instead of being judged a duplicate of itself: outcome
events stay byte-identical on redelivery, which is what downstream deduplication relies on.

The ledger commits before the outcomes are published; a crash in between is therefore harmless
(the redelivery replays the same decisions). Digests are keyed BLAKE2b (see `handlers.py`), so the
file holds no value a guess could confirm without the key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from servicekit.sqlite import SqliteDatabase
from services.ingest.domain.duplicates import Candidate, Decision

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS latest (dataset TEXT NOT NULL, entity_id TEXT NOT NULL,"
    " digest BLOB NOT NULL, topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL,"
    " kafka_offset INTEGER NOT NULL, PRIMARY KEY (dataset, entity_id))",
    "CREATE TABLE IF NOT EXISTS decisions (topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL,"
    " kafka_offset INTEGER NOT NULL, digest BLOB NOT NULL, kind TEXT NOT NULL,"
    " original TEXT, PRIMARY KEY (topic, kafka_partition, kafka_offset))",
)


class SqliteRecordLedger:
    """Implements the handler's `RecordLedger` port. `path=None` keeps it in memory (tests)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.db = SqliteDatabase(path, SCHEMA)

    def decide(self, dataset: str, candidates: Sequence[Candidate]) -> list[Decision]:
        """One decision per candidate, in order, recorded in one transaction."""
        if not candidates:
            return []
        with self.db.transaction() as db:
            return [self._decide(db, dataset, c) for c in candidates]

    def _decide(self, db: sqlite3.Connection, dataset: str, c: Candidate) -> Decision:
        where = (c.topic, c.partition, c.offset)
        seen = db.execute(
            "SELECT digest, kind, original FROM decisions"
            " WHERE topic=? AND kafka_partition=? AND kafka_offset=?",
            where,
        ).fetchone()
        if seen is not None and seen[0] == c.digest:
            return Decision(seen[1], seen[2])  # a redelivery: the same decision as the first time
        row = db.execute(
            "SELECT digest, topic, kafka_partition, kafka_offset FROM latest WHERE dataset=? AND entity_id=?",
            (dataset, c.entity_id),
        ).fetchone()
        if row is not None and row[0] == c.digest:
            decision = Decision("duplicate", f"{row[1]}/{row[2]}/{row[3]}")
        else:
            decision = Decision("new" if row is None else "update", None)
            db.execute(
                "INSERT OR REPLACE INTO latest VALUES (?, ?, ?, ?, ?, ?)",
                (dataset, c.entity_id, c.digest, *where),
            )
        db.execute(
            "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
            (*where, c.digest, decision.kind, decision.original),
        )
        return decision

    def latest(self, dataset: str, entity_ids: Iterable[str]) -> dict[str, bytes]:
        """The digest of the last clean record of each known entity id (read only)."""
        ids = list(dict.fromkeys(entity_ids))
        found: dict[str, bytes] = {}
        with self.db.connection() as db:
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT entity_id, digest FROM latest WHERE dataset=? AND entity_id IN ({marks})"
                found.update(db.execute(query, [dataset, *chunk]).fetchall())
        return found

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()
