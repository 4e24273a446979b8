"""The tables of the Evidently reports in the drift SQLite file, and the writes made inside the drift
store's batch transaction (see report_store.py for what each table holds).

An older file gains the columns added since its release (`migrate`, run by both stores at open):
SQLite's ALTER TABLE ADD COLUMN keeps the rows, which read NULL in the new columns.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

Row = dict[str, Any]
SCHEMA = """
CREATE TABLE IF NOT EXISTS clean_records (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS clean_records_at ON clean_records (at);
CREATE TABLE IF NOT EXISTS report_requests (id TEXT PRIMARY KEY, trigger TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS model_windows (version TEXT PRIMARY KEY, start REAL NOT NULL,
    end REAL NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS champion (name TEXT PRIMARY KEY, version TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reference (version TEXT PRIMARY KEY, rows TEXT NOT NULL, n INTEGER NOT NULL,
    in_window INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reports (id TEXT PRIMARY KEY, report TEXT NOT NULL, created REAL NOT NULL,
    summary TEXT);
"""
# Columns added after the first release: `migrate` adds what an older file lacks (ALTER TABLE ADD COLUMN
# keeps the rows; old rows read as NULL: no prediction, no label, no flagged feature, no requested window
# = the latest records).
ADDED_COLUMNS = {
    "clean_records": (
        ("entity", "TEXT"),
        ("prediction_id", "TEXT"),
        ("model_version", "TEXT"),
        ("score", "REAL"),
        ("predicted", "INTEGER"),
        ("truth", "INTEGER"),
    ),
    "report_requests": (("feature", "TEXT"), ("window_start", "REAL"), ("window_end", "REAL")),
}
ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS clean_records_entity ON clean_records (entity);
CREATE INDEX IF NOT EXISTS clean_records_prediction ON clean_records (prediction_id);
"""
# (entity, prediction id, model version, score, decided positive, truth or None while unlabelled)
Scored = tuple[str | None, str, str, float, bool, bool | None]


def migrate(db: sqlite3.Connection) -> None:
    """Create the tables, and add the columns and indexes an older file lacks (idempotent)."""
    db.executescript(SCHEMA)
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    db.executescript(ADDED_INDEXES)


def append_records(
    db: sqlite3.Connection,
    rows: list[tuple[float, Row]],
    kept: int,
    first_kept: int,
    entities: list[str] | None = None,
) -> None:
    """Inside the caller's transaction (in its thread: the JSON encoding stays off the event loop): add
    (event time, watched features) rows, with their entities if given, drop what is beyond the bounds."""
    if not rows:
        return
    named = entities if entities is not None else [None] * len(rows)
    db.executemany(
        "INSERT INTO clean_records (at, body, entity) VALUES (?, ?, ?)",
        [(at, json.dumps(r), e) for (at, r), e in zip(rows, named, strict=True)],
    )
    db.execute(
        "DELETE FROM clean_records WHERE seq > ? AND seq <= (SELECT max(seq) FROM clean_records) - ?",
        (first_kept, kept),
    )


def attach_predictions(db: sqlite3.Connection, scored: list[Scored]) -> int:
    """Inside the caller's transaction: put served predictions (and labels, once joined) on their
    kept records. Returns how many found no record (not kept, or not arrived yet)."""
    missed = 0
    for entity, prediction_id, version, score, predicted, truth in scored:
        values = (version, score, int(predicted), None if truth is None else int(truth))
        found = 0
        if truth is not None or entity is None:  # a label: the record holding its prediction, if any
            found = db.execute(
                "UPDATE clean_records SET model_version = ?, score = ?, predicted = ?,"
                " truth = coalesce(?, truth) WHERE prediction_id = ?",
                (*values, prediction_id),
            ).rowcount
        if not found and entity is not None:  # a new prediction, or a label that brings its prediction
            found = db.execute(
                "UPDATE clean_records SET model_version = ?, score = ?, predicted = ?, truth = ?,"
                " prediction_id = ? WHERE seq = (SELECT max(seq) FROM clean_records WHERE entity = ?)"
                " AND prediction_id IS NULL",
                (*values, prediction_id, entity),
            ).rowcount
        missed += not found
    return missed


def add_requests(
    db: sqlite3.Connection,
    requests: list[tuple[str, str, str | None]],
    window: tuple[float, float] | None = None,
) -> None:
    """Inside the caller's transaction: (report id, trigger, flagged feature or None), each of the
    records whose event time is in `window` (epoch seconds, [start, end)), or of the latest if None."""
    start, end = window or (None, None)
    db.executemany(
        "INSERT OR IGNORE INTO report_requests (id, trigger, at, feature, window_start, window_end)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(i, t, time.time(), f, start, end) for i, t, f in requests],
    )
