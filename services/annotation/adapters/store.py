"""The annotation service's state, in SQLite (servicekit.sqlite): its tasks (the import outbox: a chosen
case is a `queued` row before it is a Label Studio task), and beside them what it remembers
(adapters/remembered.py: what it saw on the bus, its Label Studio projects, the webhooks it processed).
The labels outbox (servicekit.outbox) lives in the same file, so a state change and its event commit
together."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servicekit.sqlite import SqliteDatabase
from services.annotation.adapters.remembered import REMEMBERED_SCHEMA, Remembered
from services.annotation.domain.policy import GroupShares

QUEUED, OPEN, DISPUTED, LABELLED, SUPERSEDED = "queued", "open", "disputed", "labelled", "superseded"
ALL = ("*", "*")  # the group_counts row that counts every task sent
EXPIRED = "expired"  # open in Label Studio longer than the policy's task_ttl_s: out of the budget and polls
STATES = (QUEUED, OPEN, DISPUTED, LABELLED, SUPERSEDED, EXPIRED)
ACTIVE = (QUEUED, OPEN, DISPUTED)

TASKS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tasks (
        prediction_id TEXT PRIMARY KEY,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        entity_id TEXT,
        reasons TEXT NOT NULL,
        groups TEXT NOT NULL,
        state TEXT NOT NULL,
        data TEXT NOT NULL,
        prediction TEXT NOT NULL,
        predicted_at REAL NOT NULL,
        chosen_at REAL NOT NULL,
        import_started_at REAL,
        project_id INTEGER,
        task_id INTEGER UNIQUE,
        opened_at REAL,
        outcome TEXT,
        agreement REAL,
        annotators TEXT,
        reasoning_wrong INTEGER NOT NULL DEFAULT 0,
        comment TEXT,
        note TEXT,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, model_name)",
    "CREATE INDEX IF NOT EXISTS tasks_chosen ON tasks (chosen_at)",
    """CREATE TABLE IF NOT EXISTS group_counts (
        dimension TEXT NOT NULL, value TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (dimension, value))""",
)

_COLUMNS = (
    "prediction_id, model_name, model_version, entity_id, reasons, groups, state, data, prediction, "
    "predicted_at, chosen_at, import_started_at, project_id, task_id, opened_at, outcome, agreement, "
    "annotators, reasoning_wrong, comment, note, updated_at"
)


@dataclass(frozen=True)
class TaskRow:
    prediction_id: str
    model_name: str
    model_version: str
    entity_id: str | None
    reasons: list[str]
    groups: dict[str, str]
    state: str
    data: dict[str, Any]
    prediction: str
    predicted_at: float
    chosen_at: float
    import_started_at: float | None
    project_id: int | None
    task_id: int | None
    opened_at: float | None
    outcome: str | None
    agreement: float | None
    annotators: list[str]
    reasoning_wrong: bool
    comment: str | None
    note: str | None
    updated_at: float

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> TaskRow:
        values = list(row)
        values[4] = json.loads(values[4])
        values[5] = json.loads(values[5])
        values[7] = json.loads(values[7])
        values[17] = json.loads(values[17]) if values[17] else []
        values[18] = bool(values[18])
        return cls(*values)


class AnnotationStore:
    """The tasks; `remembered` holds the small tables beside them (same file, same transactions)."""

    def __init__(self, path: Path | None, max_remembered: int = 200_000) -> None:
        self.db = SqliteDatabase(path, TASKS_SCHEMA + REMEMBERED_SCHEMA)
        self.remembered = Remembered(self.db, max_remembered)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db.transaction() as conn:
            yield conn

    # tasks

    def insert(self, conn: sqlite3.Connection, row: TaskRow) -> bool:
        """A new task row (False if the prediction has one: redeliveries and replays change nothing)."""
        cursor = conn.execute(
            f"INSERT OR IGNORE INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 22)})",
            (
                row.prediction_id, row.model_name, row.model_version, row.entity_id, json.dumps(row.reasons),
                json.dumps(row.groups), row.state, json.dumps(row.data), row.prediction, row.predicted_at,
                row.chosen_at, None, None, None, None, None, None, None, 0, None, row.note, time.time(),
            ),
        )  # fmt: skip
        if cursor.rowcount != 1:
            return False
        if row.state != SUPERSEDED:  # the tasks sent, by group, and all of them under ALL: one population
            conn.executemany(
                "INSERT INTO group_counts VALUES (?, ?, 1) "
                "ON CONFLICT (dimension, value) DO UPDATE SET count = count + 1",
                [ALL, *sorted(row.groups.items())],
            )
        return True

    def get(self, prediction_id: str) -> TaskRow | None:
        return self._one("WHERE prediction_id = ?", (prediction_id,))

    def by_task_id(self, task_id: int) -> TaskRow | None:
        return self._one("WHERE task_id = ?", (task_id,))

    def exists(self, conn: sqlite3.Connection, prediction_id: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM tasks WHERE prediction_id = ?", (prediction_id,)).fetchone()
            is not None
        )

    def _one(self, where: str, args: tuple[Any, ...]) -> TaskRow | None:
        rows = self._many(where, args)
        return rows[0] if rows else None

    def _many(self, where: str, args: tuple[Any, ...] = ()) -> list[TaskRow]:
        with self.db.connection() as conn:
            return [TaskRow.of(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM tasks {where}", args)]

    def update(self, prediction_id: str, conn: sqlite3.Connection | None = None, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        if "annotators" in fields:
            fields["annotators"] = json.dumps(fields["annotators"])
        if "data" in fields:
            fields["data"] = json.dumps(fields["data"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        statement = f"UPDATE tasks SET {assignments} WHERE prediction_id = ?"
        if conn is not None:
            conn.execute(statement, (*fields.values(), prediction_id))
            return
        with self.db.connection() as own:
            own.execute(statement, (*fields.values(), prediction_id))

    def in_state(self, model_name: str, *states: str, limit: int = 1_000_000) -> list[TaskRow]:
        marks = ", ".join("?" * len(states))
        return self._many(
            f"WHERE model_name = ? AND state IN ({marks}) ORDER BY chosen_at, prediction_id LIMIT ?",
            (model_name, *states, limit),
        )

    def expire(self, opened_before: float) -> int:
        """Open or disputed tasks opened before `opened_before` become expired; how many. An answer
        that still comes (a webhook, e.g. a ground-truth mark on a dispute) is settled like any other."""
        note = "not settled within the policy's task_ttl_s"
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET state = ?, note = ?, updated_at = ?"
                " WHERE state IN (?, ?) AND opened_at < ?",
                (EXPIRED, note, time.time(), OPEN, DISPUTED, opened_before),
            )
            return int(cursor.rowcount)

    def models_to_sync(self, opened_since: float = 0.0) -> list[str]:
        """Models with tasks to import, to read back, or superseded but still awaiting their answers
        (those opened since `opened_since`: older ones are no longer read back)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT model_name FROM tasks WHERE state IN (?, ?, ?) "
                "OR (state = ? AND task_id IS NOT NULL AND outcome IS NULL AND opened_at >= ?)",
                (*ACTIVE, SUPERSEDED, opened_since),
            )
            return sorted(r[0] for r in rows)

    def awaiting_answers(self, model_name: str, opened_since: float = 0.0) -> list[TaskRow]:
        """Tasks in Label Studio whose answers still matter: open, disputed, or superseded by a client's
        label before they were answered (their answers then measure the annotators against the client)
        and opened since `opened_since`."""
        return self._many(
            "WHERE model_name = ? AND (state IN (?, ?) "
            "OR (state = ? AND task_id IS NOT NULL AND outcome IS NULL AND opened_at >= ?)) "
            "ORDER BY chosen_at, prediction_id",
            (model_name, OPEN, DISPUTED, SUPERSEDED, opened_since),
        )

    def maybe_imported(self, model_name: str) -> list[TaskRow]:
        """Queued rows whose import was started: Label Studio may hold them already."""
        return self._many(
            "WHERE model_name = ? AND state = ? AND import_started_at IS NOT NULL", (model_name, QUEUED)
        )

    def mark_import_started(self, prediction_ids: list[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE tasks SET import_started_at = ?, updated_at = ? WHERE prediction_id = ?",
                [(time.time(), time.time(), p) for p in prediction_ids],
            )

    def counts(self) -> dict[str, int]:
        with self.db.connection() as conn:
            found = dict(conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())
        return {state: int(found.get(state, 0)) for state in STATES}

    def active_count(self, conn: sqlite3.Connection) -> int:
        marks = ", ".join("?" * len(ACTIVE))
        return int(conn.execute(f"SELECT COUNT(*) FROM tasks WHERE state IN ({marks})", ACTIVE).fetchone()[0])

    def shares(self, conn: sqlite3.Connection) -> GroupShares:
        """Each group's count among the tasks sent so far, and their total, counted together at insert
        (a task superseded later still counts in both: it was sent)."""
        by_group = {
            (d, v): int(c) for d, v, c in conn.execute("SELECT dimension, value, count FROM group_counts")
        }
        return GroupShares(by_group.pop(ALL, 0), by_group)

    def recent(self, limit: int) -> list[TaskRow]:
        return self._many("ORDER BY chosen_at DESC, prediction_id LIMIT ?", (limit,))
