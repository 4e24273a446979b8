"""A bounded local store of predictions seen on predictions.made: id -> version, entity, features.

SQLite under the service folder. Inserting is idempotent on the prediction id (a redelivered event is
a no-op); beyond `max_rows` the oldest rows are dropped. Blocking: call in a thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from services.explain.domain.model import Scalar


@dataclass(frozen=True)
class StoredPrediction:
    prediction_id: str
    model_version: str
    entity_id: str | None
    features: dict[str, Scalar]
    score: float


class SqlitePredictions:
    def __init__(self, path: Path, max_rows: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS predictions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "prediction_id TEXT UNIQUE NOT NULL, model_version TEXT NOT NULL, entity_id TEXT, "
            "features TEXT NOT NULL, score REAL NOT NULL)"
        )
        self._lock = threading.Lock()
        self.max_rows = max_rows

    def add(self, p: StoredPrediction) -> bool:
        """False when the id was already stored (a duplicate delivery)."""
        return self.add_many([p]) == [True]

    def add_many(self, batch: list[StoredPrediction]) -> list[bool]:
        """Store a batch in one transaction; for each, False when its id was already stored."""
        added: list[bool] = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for p in batch:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO predictions "
                        "(prediction_id, model_version, entity_id, features, score) VALUES (?, ?, ?, ?, ?)",
                        (p.prediction_id, p.model_version, p.entity_id, json.dumps(p.features), p.score),
                    )
                    added.append(cursor.rowcount == 1)
                    if added[-1] and cursor.lastrowid is not None and cursor.lastrowid % 1000 == 0:
                        self._db.execute(
                            "DELETE FROM predictions WHERE seq <= (SELECT MAX(seq) FROM predictions) - ?",
                            (self.max_rows,),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def get(self, prediction_id: str) -> StoredPrediction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT prediction_id, model_version, entity_id, features, score FROM predictions "
                "WHERE prediction_id = ?",
                (prediction_id,),
            ).fetchone()
        if row is None:
            return None
        return StoredPrediction(row[0], row[1], row[2], json.loads(row[3]), float(row[4]))

    def close(self) -> None:
        self._db.close()
