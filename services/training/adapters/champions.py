"""Every move of the champion alias the training service made, in its state file (table
`champion_moves`): the history a rollback reads, and the ledger that makes a rollback idempotent.

A promotion is recorded as it is published. A rollback is recorded with its event *before* the alias
moves, as unpublished; it is marked published once Kafka has it. A retry of the same request (same
idempotency key) finds the row: an unpublished one is finished (alias set again, event published
again with the same event id, which consumers skip if they had it), a published one is answered as is.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from servicekit.sqlite import SqliteDatabase
from services.training.domain.champions import Move

COLUMNS = "event_id, kind, version, previous_version, run_id, evidence, reason, requested_by, at, request"


class ChampionHistory:
    def __init__(self, database: SqliteDatabase, model_name: str) -> None:
        self.database = database
        self.model_name = model_name

    def record(
        self, move: Move, *, event: str | None = None, key: str | None = None, published: bool = True
    ) -> bool:
        """Append a move (False when its event id was recorded before: a redelivery)."""
        at = move.at or datetime.now(UTC).isoformat(timespec="microseconds")
        row = (
            move.event_id,
            self.model_name,
            move.kind,
            move.version,
            move.previous_version,
            move.run_id,
            json.dumps(move.evidence),
            move.reason,
            move.requested_by,
            at,
            key,
            json.dumps(move.request, sort_keys=True),
            event,
            int(published),
        )
        with self.database.transaction() as db:
            return (
                db.execute(
                    "INSERT OR IGNORE INTO champion_moves (event_id, model_name, kind, version,"
                    " previous_version, run_id, evidence, reason, requested_by, at, idempotency_key, request,"
                    " event, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                ).rowcount
                == 1
            )

    def moves(self) -> list[Move]:
        """The model's history, oldest first."""
        with self.database.connection() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM champion_moves WHERE model_name = ? ORDER BY seq",
                (self.model_name,),
            ).fetchall()
        return [_move(row) for row in rows]

    def by_key(self, key: str) -> tuple[Move, str | None, bool] | None:
        """The move recorded under this idempotency key: (move, its event JSON, published)."""
        return self._one("idempotency_key = ?", key)

    def by_event(self, event_id: str) -> tuple[Move, str | None, bool] | None:
        return self._one("event_id = ?", event_id)

    def _one(self, where: str, value: str) -> tuple[Move, str | None, bool] | None:
        with self.database.connection() as db:
            row = db.execute(
                f"SELECT {COLUMNS}, event, published FROM champion_moves WHERE model_name = ? AND {where}",
                (self.model_name, value),
            ).fetchone()
        return None if row is None else (_move(row[:-2]), row[-2], bool(row[-1]))

    def mark_published(self, event_id: str) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE champion_moves SET published = 1 WHERE event_id = ?", (event_id,))

    def forget(self, event_id: str) -> None:
        """Remove an unpublished move whose alias could not be set (nothing happened)."""
        with self.database.transaction() as db:
            db.execute("DELETE FROM champion_moves WHERE event_id = ? AND published = 0", (event_id,))


def _move(row: sqlite3.Row | tuple[Any, ...]) -> Move:
    event_id, kind, version, previous, run_id, evidence, reason, by, at, request = row
    return Move(
        version, previous, kind, run_id, json.loads(evidence), event_id, reason, by, at, json.loads(request)
    )
