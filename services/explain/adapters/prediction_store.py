"""A bounded local store of predictions seen on predictions.made: id -> version, entity, features.

SQLite under the service folder. Inserting is idempotent on the prediction id (a redelivered event is
a no-op); beyond `max_rows` the oldest rows are dropped. Blocking: call in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from servicekit.sqlite import SqliteDatabase
from services.explain.domain.model import Scalar


@dataclass(frozen=True)
class StoredPrediction:
    prediction_id: str
    model_version: str
    entity_id: str | None
    features: dict[str, Scalar]
    score: float


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "prediction_id TEXT UNIQUE NOT NULL, model_version TEXT NOT NULL, entity_id TEXT, "
    "features TEXT NOT NULL, score REAL NOT NULL)",
)


class SqlitePredictions:
    def __init__(self, path: Path, max_rows: int) -> None:
        self.db = SqliteDatabase(path, SCHEMA)
        self.max_rows = max_rows

    def add(self, p: StoredPrediction) -> bool:
        """False when the id was already stored (a duplicate delivery)."""
        return self.add_many([p]) == [True]

    def add_many(self, batch: list[StoredPrediction]) -> list[bool]:
        """Store a batch in one transaction; for each, False when its id was already stored."""
        added: list[bool] = []
        with self.db.transaction() as db:
            for p in batch:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO predictions "
                    "(prediction_id, model_version, entity_id, features, score) VALUES (?, ?, ?, ?, ?)",
                    (p.prediction_id, p.model_version, p.entity_id, json.dumps(p.features), p.score),
                )
                added.append(cursor.rowcount == 1)
                if added[-1] and cursor.lastrowid is not None and cursor.lastrowid % 1000 == 0:
                    db.execute(
                        "DELETE FROM predictions WHERE seq <= (SELECT MAX(seq) FROM predictions) - ?",
                        (self.max_rows,),
                    )
        return added

    def get(self, prediction_id: str) -> StoredPrediction | None:
        with self.db.connection() as db:
            row = db.execute(
                "SELECT prediction_id, model_version, entity_id, features, score FROM predictions "
                "WHERE prediction_id = ?",
                (prediction_id,),
            ).fetchone()
        if row is None:
            return None
        return StoredPrediction(row[0], row[1], row[2], json.loads(row[3]), float(row[4]))

    def close(self) -> None:
        self.db.close()
