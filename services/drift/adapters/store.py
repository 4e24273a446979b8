"""Where the drift watch survives restarts: one SQLite file under the service folder.

Per consumed batch, ONE transaction writes: the monitors (pickled: our detectors and River's pickle,
so the state is the exact object graph; a River upgrade may not read an old pickle, in which case
the service starts fresh and logs it), the join's changed entries (rows, not a blob: the join may
hold 100k entries), the last offset handled per partition (duplicates after a crash are skipped),
and the DriftDetected events to publish (an outbox, emptied once the broker acknowledged them). When
reports are on, the same transaction adds the batch's clean records to the bounded report window, the
served predictions and joined labels to those records, and the report requests of its drift events
(tables of adapters/report_tables.py).
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

from services.drift.adapters import report_tables
from services.drift.domain.join import BoundedStore, Pending
from services.drift.domain.watch import DriftWatch, WatchConfig

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending (side TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL,
    value BLOB NOT NULL, PRIMARY KEY (side, key));
CREATE TABLE IF NOT EXISTS offsets (topic TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body BLOB NOT NULL);
"""


class DriftStore:
    def __init__(self, path: Path, records_kept: int = 5000, first_kept: int = 1000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.records_kept, self.first_kept = path, records_kept, first_kept
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA)
        report_tables.migrate(self._db)
        self._lock = threading.Lock()

    def load(self, config: WatchConfig) -> DriftWatch:
        watch = DriftWatch(config)
        with self._lock:
            row = self._db.execute("SELECT value FROM blobs WHERE name = 'watch'").fetchone()
            pending = self._db.execute("SELECT side, key, at, value FROM pending ORDER BY rowid").fetchall()
        if row is None:
            return watch
        try:
            saved: dict[str, Any] = pickle.loads(row[0])
        except Exception:
            log.warning("stored drift state unreadable (library upgrade?); starting fresh", exc_info=True)
            return watch
        watch.monitors.update(saved["monitors"])
        watch.reconcile_categorical()
        watch.versions, watch.skipped = saved["versions"], saved["skipped"]
        watch.quality = saved.get("quality", {})  # absent from states saved before it existed
        watch.estimators = saved.get("estimators", {})
        watch.canaries = saved.get("canaries", {})
        join = watch.join
        join.joined = saved["joined"]
        for side, store in (("p", join.predictions), ("l", join.labels)):
            store.now, store.evicted, store.expired = saved[side]
            for s, key, at, value in pending:
                if s == side:
                    store.items[key] = Pending(key, at, pickle.loads(value))
        join.rebuild_index()
        return watch

    def offsets(self) -> dict[tuple[str, int], int]:
        with self._lock:
            rows = self._db.execute("SELECT topic, part, next FROM offsets").fetchall()
        return {(t, p): n for t, p, n in rows}

    def save(
        self,
        watch: DriftWatch,
        offsets: dict[tuple[str, int], int],
        outbox: list[tuple[str, bytes]],
        records: list[tuple[float, dict[str, Any]]] | None = None,
        report_requests: list[tuple[str, str, str | None]] | None = None,
        *,
        entities: list[str] | None = None,
        scored: list[report_tables.Scored] | None = None,
    ) -> int:
        """`records`: (event time, watched features), of `entities`; `report_requests`: (report id,
        trigger, flagged feature); `scored`: served predictions and joined labels for those records.
        Returns how many of `scored` found no kept record."""
        join = watch.join
        blob = pickle.dumps(
            {
                "monitors": watch.monitors,
                "versions": watch.versions,
                "skipped": watch.skipped,
                "quality": watch.quality,
                "estimators": watch.estimators,
                "canaries": watch.canaries,
                "joined": join.joined,
                "p": _meta(join.predictions),
                "l": _meta(join.labels),
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.execute("INSERT OR REPLACE INTO blobs VALUES ('watch', ?)", (blob,))
                for side, store in (("p", join.predictions), ("l", join.labels)):
                    upserts, deletes = store.changes()
                    db.executemany(
                        "DELETE FROM pending WHERE side = ? AND key = ?", [(side, k) for k in deletes]
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?)",
                        [(side, p.key, p.at, pickle.dumps(p.value)) for p in upserts],
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(t, p, n) for (t, p), n in offsets.items()],
                )
                db.executemany("INSERT INTO outbox VALUES (?, ?)", outbox)
                report_tables.append_records(db, records or [], self.records_kept, self.first_kept, entities)
                missed = report_tables.attach_predictions(db, scored or [])
                report_tables.add_requests(db, report_requests or [])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return missed

    def outbox(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, body FROM outbox ORDER BY rowid").fetchall()

    def sent(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (event_id,))

    def pending_rows(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    def ping(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1").fetchone() == (1,)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _meta(store: BoundedStore) -> tuple[float, int, int]:
    return store.now, store.evicted, store.expired
