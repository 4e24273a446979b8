"""What the annotation service remembers beside its tasks, in the same SQLite file (adapters/store.py
makes the file; these calls share its transactions): what it saw on the bus (local explanations and
clients' labels, each bounded to the newest `max_remembered`; drift windows), its Label Studio
projects, and the webhooks it processed (by annotation id and update time)."""

from __future__ import annotations

import sqlite3

from servicekit.sqlite import SqliteDatabase

REMEMBERED_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS explanations (prediction_id TEXT PRIMARY KEY, summary TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS client_labels (prediction_id TEXT PRIMARY KEY, label TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS drift_windows (model_name TEXT PRIMARY KEY, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projects (model_name TEXT PRIMARY KEY, project_id INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS webhooks_seen (
        annotation_id INTEGER NOT NULL, updated_at TEXT NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (annotation_id, updated_at))""",
)


class Remembered:
    def __init__(self, db: SqliteDatabase, max_remembered: int) -> None:
        self.db = db
        self.max_remembered = max_remembered

    # what the service saw on the bus

    def put_explanation(self, conn: sqlite3.Connection, prediction_id: str, summary: str) -> None:
        conn.execute("INSERT OR REPLACE INTO explanations VALUES (?, ?)", (prediction_id, summary))
        self._bound(conn, "explanations")

    def explanation(self, conn: sqlite3.Connection, prediction_id: str) -> str | None:
        row = conn.execute(
            "SELECT summary FROM explanations WHERE prediction_id = ?", (prediction_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def put_client_label(self, conn: sqlite3.Connection, prediction_id: str, label: str) -> None:
        conn.execute("INSERT OR REPLACE INTO client_labels VALUES (?, ?)", (prediction_id, label))
        self._bound(conn, "client_labels")

    def client_label(self, prediction_id: str, conn: sqlite3.Connection | None = None) -> str | None:
        query = "SELECT label FROM client_labels WHERE prediction_id = ?"
        if conn is not None:
            row = conn.execute(query, (prediction_id,)).fetchone()
        else:
            with self.db.connection() as own:
                row = own.execute(query, (prediction_id,)).fetchone()
        return str(row[0]) if row else None

    def _bound(self, conn: sqlite3.Connection, table: str) -> None:
        conn.execute(
            f"DELETE FROM {table} WHERE rowid <= (SELECT MAX(rowid) FROM {table}) - ?", (self.max_remembered,)
        )

    def open_drift_window(self, conn: sqlite3.Connection, model_name: str, until: float) -> None:
        conn.execute(
            "INSERT INTO drift_windows VALUES (?, ?) ON CONFLICT (model_name) DO UPDATE SET until = "
            "MAX(until, excluded.until)",
            (model_name, until),
        )

    def drift_until(self, conn: sqlite3.Connection, model_name: str) -> float | None:
        row = conn.execute("SELECT until FROM drift_windows WHERE model_name = ?", (model_name,)).fetchone()
        return float(row[0]) if row else None

    # Label Studio

    def project(self, model_name: str) -> int | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT project_id FROM projects WHERE model_name = ?", (model_name,)
            ).fetchone()
        return int(row[0]) if row else None

    def set_project(self, model_name: str, project_id: int) -> None:
        with self.db.connection() as conn:
            conn.execute("INSERT OR REPLACE INTO projects VALUES (?, ?)", (model_name, project_id))

    def forget_project(self, model_name: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM projects WHERE model_name = ?", (model_name,))

    def webhook_seen(self, annotation_id: int, updated_at: str) -> str | None:
        """The Kafka coordinates of the record that processed this webhook, if one did."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT source FROM webhooks_seen WHERE annotation_id = ? AND updated_at = ?",
                (annotation_id, updated_at),
            ).fetchone()
        return str(row[0]) if row else None

    def mark_webhook_seen(self, annotation_id: int, updated_at: str, source: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO webhooks_seen VALUES (?, ?, ?)", (annotation_id, updated_at, source)
            )
