"""What scheduled retraining keeps in the training service's SQLite state (the same file).

`schedule_marks`: per trigger, the last due time that fired, was covered by another trigger's request
or was skipped while paused; a due time fires only when it is later than its mark. `schedule_outbox`:
a scheduled TrainingRequested is saved here in the same transaction as its marks, *before* it is
published, and marked published after. A crash between the two publishes it again at start, with the
same event id (the run ledger trains an event id once): a due time is neither lost nor trained twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from servicekit.sqlite import SqliteDatabase
from services.training.domain.schedule import TRIGGERS, Due, Trigger

SCHEDULE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schedule_marks ("
    " trigger TEXT PRIMARY KEY, due_at TEXT NOT NULL, marked_at TEXT NOT NULL, outcome TEXT NOT NULL,"
    " event_id TEXT)",
    "CREATE TABLE IF NOT EXISTS schedule_outbox ("
    " event_id TEXT PRIMARY KEY, event TEXT NOT NULL, saved_at TEXT NOT NULL, published INTEGER NOT NULL)",
)
KEPT_PUBLISHED = 100  # older published outbox rows are deleted


class ScheduleStore:
    def __init__(self, database: SqliteDatabase, model_name: str) -> None:
        self.database = database
        self.model_name = model_name
        self._nth: dict[tuple[str, int], datetime] = {}  # (last run finished at, n) -> n-th label's arrival

    def armed_at(self, cron: str | None, now: datetime) -> datetime:
        """When this cron expression was first checked (saved then; a new expression is armed anew):
        its times before that never fire, so switching a cron on or changing it does not train at once."""
        with self.database.transaction() as db:
            row = db.execute("SELECT value FROM control WHERE key = 'schedule_cron_armed'").fetchone()
            armed = json.loads(row[0]) if row else None
            if armed is None or armed["cron"] != cron:
                armed = {"cron": cron, "at": _iso(now)}
                db.execute(
                    "INSERT OR REPLACE INTO control VALUES ('schedule_cron_armed', ?)", (json.dumps(armed),)
                )
        return datetime.fromisoformat(armed["at"])

    def marks(self) -> dict[Trigger, dict[str, Any]]:
        with self.database.connection() as db:
            rows = db.execute(
                "SELECT trigger, due_at, marked_at, outcome, event_id FROM schedule_marks"
            ).fetchall()
        found: dict[Trigger, dict[str, Any]] = {}
        for trigger, due_at, marked_at, outcome, event_id in rows:
            if trigger in TRIGGERS:
                found[trigger] = {
                    "due_at": due_at,
                    "marked_at": marked_at,
                    "outcome": outcome,
                    "event_id": event_id,
                }
        return found

    def save(
        self, due: tuple[Due, ...], outcome: str, at: datetime, event_id: str | None, event: str | None
    ) -> None:
        """Mark every due trigger (the first with `outcome`, the others as covered by it) and, when a
        request fires, put it in the outbox: one transaction."""
        with self.database.transaction() as db:
            for i, each in enumerate(due):
                mark = outcome if i == 0 or outcome != "fired" else "covered"
                db.execute(
                    "INSERT OR REPLACE INTO schedule_marks VALUES (?, ?, ?, ?, ?)",
                    (each.trigger, _iso(each.due_at), _iso(at), mark, event_id),
                )
            if event_id is not None and event is not None:
                db.execute(
                    "INSERT OR IGNORE INTO schedule_outbox VALUES (?, ?, ?, 0)", (event_id, event, _iso(at))
                )

    def unpublished(self) -> list[tuple[str, str]]:
        """(event id, event JSON) saved but not known to be published, oldest first."""
        with self.database.connection() as db:
            rows = db.execute(
                "SELECT event_id, event FROM schedule_outbox WHERE published = 0 ORDER BY saved_at, rowid"
            ).fetchall()
        return [(str(event_id), str(event)) for event_id, event in rows]

    def mark_published(self, event_id: str) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE schedule_outbox SET published = 1 WHERE event_id = ?", (event_id,))
            db.execute(
                "DELETE FROM schedule_outbox WHERE published = 1 AND rowid NOT IN"
                " (SELECT rowid FROM schedule_outbox ORDER BY saved_at DESC, rowid DESC LIMIT ?)",
                (KEPT_PUBLISHED,),
            )

    def labels_since_run(self, n: int) -> tuple[int, datetime | None]:
        """Labelled entities received since the last run finished (as `TrainingState.new_labels` counts
        them), and when the n-th of them arrived (None: fewer). Labels arrive later than the ones before
        them, so that time never changes once there are n: it is computed once per run (a query that
        groups every label since the run), and each check after costs one indexed count."""
        with self.database.connection() as db:
            last_run = db.execute("SELECT COALESCE(MAX(finished_at), '') FROM runs").fetchone()[0]
            count = db.execute(
                "SELECT COUNT(DISTINCT entity_id) FROM labels WHERE received_at > ?", (last_run,)
            ).fetchone()[0]
            if count < n:
                return int(count), None
            if (last_run, n) not in self._nth:
                row = db.execute(
                    "SELECT first FROM (SELECT MIN(received_at) AS first FROM labels WHERE received_at > ?"
                    " GROUP BY entity_id) ORDER BY first LIMIT 1 OFFSET ?",
                    (last_run, n - 1),
                ).fetchone()
                self._nth = {(last_run, n): datetime.fromisoformat(row[0])}
        return int(count), self._nth[(last_run, n)]

    def champion_since(self) -> datetime | None:
        """When the champion became champion: its promotion, or the rollback that restored it."""
        with self.database.connection() as db:
            row = db.execute(
                "SELECT at FROM champion_moves WHERE model_name = ? AND kind IN ('promotion', 'rollback')"
                " AND published = 1 ORDER BY seq DESC LIMIT 1",
                (self.model_name,),
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
