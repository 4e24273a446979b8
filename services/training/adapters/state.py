"""The training service's own SQLite state: labels observed so far, the outcome of each run, the
retraining decisions taken on drift events, the last concept change a drift retrain started from, the
ops pause switch, and every move of the champion alias (adapters/champions.py).

Both tables are keyed by event id, so a redelivered LabelObserved or TrainingRequested is recognised
(INSERT OR IGNORE; `run_done`). One connection per call: the event loop and the training thread both
use the store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from feature_repo.names import ENTITY_KEY
from servicekit.sqlite import SqliteDatabase
from services.training.adapters.run_claims import RUN_CLAIMS_SCHEMA
from services.training.adapters.schedule_state import SCHEDULE_SCHEMA
from services.training.domain.dataset import LABEL, LABEL_TIME
from services.training.domain.manual_window import ChangePoint
from services.training.domain.retraining import Decision

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS labels ("
    " event_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL, label INTEGER NOT NULL,"
    " observed_at TEXT NOT NULL, received_at TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'client')",
    "CREATE INDEX IF NOT EXISTS labels_entity ON labels (entity_id, observed_at)",
    "CREATE INDEX IF NOT EXISTS labels_observed ON labels (observed_at)",
    "CREATE INDEX IF NOT EXISTS labels_received ON labels (received_at, entity_id)",
    "CREATE TABLE IF NOT EXISTS runs ("
    " request_id TEXT PRIMARY KEY, status TEXT NOT NULL, finished_at TEXT NOT NULL, outcome TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS decisions ("
    " event_id TEXT PRIMARY KEY, decided_at TEXT NOT NULL, kind TEXT NOT NULL, go INTEGER NOT NULL,"
    " reason TEXT NOT NULL, detail TEXT NOT NULL, request_id TEXT)",
    "CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS champion_moves ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, model_name TEXT NOT NULL,"
    " kind TEXT NOT NULL, version TEXT NOT NULL, previous_version TEXT, run_id TEXT NOT NULL,"
    " evidence TEXT NOT NULL, reason TEXT, requested_by TEXT, at TEXT NOT NULL,"
    " idempotency_key TEXT UNIQUE, request TEXT NOT NULL, event TEXT, published INTEGER NOT NULL)",
    *SCHEDULE_SCHEMA,
    *RUN_CLAIMS_SCHEMA,
)
KEPT_DECISIONS = 500  # older decisions are deleted


class TrainingState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.database = SqliteDatabase(path, SCHEMA)
        self._add_label_source()

    def _add_label_source(self) -> None:
        """A state file written before labels had a source: its labels were all clients'."""
        with self._db() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(labels)")}
            if "source" not in columns:
                db.execute("ALTER TABLE labels ADD COLUMN source TEXT NOT NULL DEFAULT 'client'")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One unit of work (the event loop and the training thread share the connection)."""
        with self.database.transaction() as conn:
            yield conn

    def add_label(self, event_id: str, entity_id: str, label: int, observed_at: datetime) -> bool:
        """Store one label; False when this event id was stored before (redelivery)."""
        return self.add_labels([(event_id, entity_id, label, observed_at)]) == [True]

    def add_labels(
        self, labels: list[tuple[str, str, int, datetime]], sources: Sequence[str] | None = None
    ) -> list[bool]:
        """Store a batch of (event id, entity id, label, observed at) in one transaction, with who
        observed each (`client` unless `sources` says `annotation`); for each, False when its event id
        was stored before (a redelivery, or twice in the batch)."""
        received = _iso(datetime.now(UTC))
        sources = sources or ["client"] * len(labels)
        with self._db() as db:
            return [
                db.execute(
                    "INSERT OR IGNORE INTO labels VALUES (?, ?, ?, ?, ?, ?)",
                    (event_id, entity_id, label, _iso(observed_at), received, source),
                ).rowcount
                == 1
                for (event_id, entity_id, label, observed_at), source in zip(labels, sources, strict=True)
            ]

    def latest_labels(self) -> pd.DataFrame:
        """One row per entity: a client's label before any annotator's (ground truth is never
        overridden by an annotation), then the most recent (by observed time, then arrival)."""
        query = (
            "SELECT entity_id, label, observed_at FROM ("
            " SELECT *, ROW_NUMBER() OVER (PARTITION BY entity_id"
            "  ORDER BY source = 'client' DESC, observed_at DESC, received_at DESC, rowid DESC) AS n"
            " FROM labels)"
            " WHERE n = 1 ORDER BY entity_id"
        )
        with self._db() as db:
            rows = db.execute(query).fetchall()
        frame = pd.DataFrame(rows, columns=[ENTITY_KEY, LABEL, LABEL_TIME])
        frame[LABEL_TIME] = pd.to_datetime(frame[LABEL_TIME], utc=True, format="ISO8601")
        frame[LABEL] = frame[LABEL].astype("int64")
        return frame

    def label_count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(DISTINCT entity_id) FROM labels").fetchone()[0])

    def label_events(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM labels").fetchone()[0])

    def run_done(self, request_id: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM runs WHERE request_id = ?", (request_id,)).fetchone() is not None

    def save_run(self, request_id: str, status: str, outcome: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                (request_id, status, _iso(datetime.now(UTC)), json.dumps(outcome, default=str)),
            )

    def latest_run(self) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute(
                "SELECT outcome FROM runs ORDER BY finished_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
        return json.loads(row[0]) if row else None

    def run(self, request_id: str) -> dict[str, Any] | None:
        """The outcome of the run a TrainingRequested (by event id) asked for; None until it finished."""
        with self._db() as db:
            row = db.execute("SELECT outcome FROM runs WHERE request_id = ?", (request_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def new_labels(self) -> int:
        """Labelled entities received since the last run finished (all of them before any run)."""
        query = (
            "SELECT COUNT(DISTINCT entity_id) FROM labels"
            " WHERE received_at > COALESCE((SELECT MAX(finished_at) FROM runs), '')"
        )
        with self._db() as db:
            return int(db.execute(query).fetchone()[0])

    def labels_since(self, since: datetime) -> int:
        """Labelled entities whose label's event time is at or after `since`."""
        query = "SELECT COUNT(DISTINCT entity_id) FROM labels WHERE observed_at >= ?"
        with self._db() as db:
            return int(db.execute(query, (_iso(since),)).fetchone()[0])

    def replace_pending_retrain(self, expected: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Write `new` as the waiting retrain if the stored one is still `expected` (None: none waits);
        False, changing nothing, when another instance sharing this state changed it meanwhile. One
        transaction: of instances racing on one waiting retrain, one wins."""
        with self._db() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'pending_retrain'").fetchone()
            if (json.loads(row[0]) if row else None) != expected:
                return False
            _write_pending(db, new)
        return True

    def pending_retrain(self) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'pending_retrain'").fetchone()
        return dict(json.loads(row[0])) if row else None

    def save_change_point(self, change: ChangePoint) -> None:
        """A drift retrain was requested from this concept change; the latest change (by time) is kept."""
        value = json.dumps({"at": _iso(change.at), "drift_event_id": change.drift_event_id})
        with self._db() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'last_change_point'").fetchone()
            if row is None or json.loads(row[0])["at"] <= _iso(change.at):
                db.execute("INSERT OR REPLACE INTO control VALUES ('last_change_point', ?)", (value,))

    def last_change_point(self) -> ChangePoint | None:
        """The latest concept change training acted on (requested a drift retrain from), if any."""
        with self._db() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'last_change_point'").fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return ChangePoint(datetime.fromisoformat(value["at"]), str(value["drift_event_id"]))

    def newest_label_time(self) -> datetime | None:
        with self._db() as db:
            row = db.execute("SELECT MAX(observed_at) FROM labels").fetchone()
        return datetime.fromisoformat(row[0]) if row[0] else None

    def decided(self, event_id: str) -> bool:
        with self._db() as db:
            return (
                db.execute("SELECT 1 FROM decisions WHERE event_id = ?", (event_id,)).fetchone() is not None
            )

    def save_decision(
        self, event_id: str, at: datetime, kind: str, decision: Decision, request_id: str | None
    ) -> None:
        with self._db() as db:
            db.execute(  # REPLACE: a decision that waited for labels is decided again later
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, _iso(at), kind, int(decision.go), decision.reason, decision.detail, request_id),
            )
            db.execute(
                "DELETE FROM decisions WHERE rowid NOT IN"
                " (SELECT rowid FROM decisions ORDER BY decided_at DESC, rowid DESC LIMIT ?)",
                (KEPT_DECISIONS,),
            )

    def recent_decisions(self, limit: int) -> list[dict[str, Any]]:
        columns = ("event_id", "decided_at", "kind", "go", "reason", "detail", "request_id")
        with self._db() as db:
            rows = db.execute(
                f"SELECT {', '.join(columns)} FROM decisions ORDER BY decided_at DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(zip(columns, row, strict=True)) | {"go": bool(row[3])} for row in rows]

    def retrains_since(self, since: datetime) -> tuple[int, datetime | None]:
        """Retrains decided since `since`, and when the last retrain (ever) was decided."""
        with self._db() as db:
            count = db.execute(
                "SELECT COUNT(*) FROM decisions WHERE go = 1 AND decided_at > ?", (_iso(since),)
            ).fetchone()[0]
            last = db.execute("SELECT MAX(decided_at) FROM decisions WHERE go = 1").fetchone()[0]
        return int(count), datetime.fromisoformat(last) if last else None

    def set_paused(self, paused: bool, by: str, at: datetime, note: str | None = None) -> None:
        value = json.dumps({"paused": paused, "changed_by": by, "changed_at": _iso(at), "note": note})
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO control VALUES ('retraining', ?)", (value,))

    def pause_status(self) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'retraining'").fetchone()
        status: dict[str, Any] = json.loads(row[0]) if row else {"paused": False}
        return status

    def ping(self) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1").fetchone() == (1,)


def _write_pending(db: sqlite3.Connection, pending: dict[str, Any] | None) -> None:
    if pending is None:
        db.execute("DELETE FROM control WHERE key = 'pending_retrain'")
    else:
        db.execute("INSERT OR REPLACE INTO control VALUES ('pending_retrain', ?)", (json.dumps(pending),))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
