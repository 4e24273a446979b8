"""What Evidently reports are made from and where they go: tables in the drift SQLite file, files in
<state_dir>/drift/reports.

- `clean_records`: the watched features of the clean records, in arrival order (`seq`). The first
  `first_kept` rows are kept for good (the reference until a champion is known); of the rest, only
  the latest `kept`. Written by `DriftStore.save` in the batch's transaction (`append_records`), so
  a redelivered batch is never stored twice. Each row also has its entity and, once known, the
  served (non-shadow) prediction of the report's model (`prediction_id`, `model_version`, `score`,
  `predicted` = the decision is the positive one) and the label's truth (`truth`), written by
  `attach_predictions` in the same transactions. A prediction goes to the latest record of its
  entity if that record has none yet; a label to the record holding its prediction (or, when the
  prediction came before its record, with it to the entity's latest unscored record).
- `report_requests`: reports asked for and not made yet (a drift event's is written with the event,
  in the same transaction, so a crash does not lose it), with the feature a data-drift event named
  and the window of event times a request asked for (`window_start`, `window_end`; NULL: the latest).
- `model_windows`, `champion`, `reference`: training windows from ModelTrained, the champion from
  ModelPromoted, and the champion's frozen reference sample.
- `reports`: the index (id, the report it resolves to, created_at, summary). A request coalesced
  into another report gets a row pointing at that report.

Reads and report writes use a connection of their own (WAL: they never block the batch writes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from services.drift.adapters.report_tables import Row, add_requests, migrate
from services.drift.domain.report_summary import LABEL, PREDICTED, SCORE, VERSION

MODEL_WINDOWS_KEPT = 50


class Pending(NamedTuple):
    """A report asked for and not made yet; `window`: event times [start, end) in epoch seconds, or
    None for the latest records."""

    id: str
    trigger: str
    window: tuple[float, float] | None = None


class ReportStore:
    def __init__(self, db_path: Path, reports_dir: Path, first_kept: int) -> None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.dir, self.first_kept = reports_dir.resolve(), first_kept
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        migrate(self._db)
        self._lock = threading.Lock()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # The records.
    def latest(self, n: int) -> tuple[list[Row], dict[str, Any]]:
        """The last `n` records seen, oldest first, and the window's bounds."""
        found = self._all(f"SELECT {READ} FROM clean_records ORDER BY seq DESC LIMIT ?", (n,))[::-1]
        return [_row(f) for f in found], _bounds(found)

    def in_window(self, start: float, end: float) -> tuple[list[Row], dict[str, Any]]:
        """The kept records whose event time is in [start, end) (epoch seconds), in arrival order,
        and their bounds."""
        found = self._all(
            f"SELECT {READ} FROM clean_records WHERE at >= ? AND at < ? ORDER BY seq", (start, end)
        )
        return [_row(f) for f in found], _bounds(found)

    def pruning(self) -> dict[str, Any]:
        """What the bounded table no longer holds: `pruned`, the records seen and dropped (those after
        the first `first_kept`, before the latest ones), and `latest_from`, the earliest event time of
        the latest kept records (None before any)."""
        seen, held = self._all("SELECT coalesce(max(seq), 0), count(*) FROM clean_records")[0]
        (latest_from,) = self._all("SELECT min(at) FROM clean_records WHERE seq > ?", (self.first_kept,))[0]
        return {"pruned": seen - held, "latest_from": latest_from}

    def between(self, start: float, end: float) -> list[Row]:
        found = self._all(
            f"SELECT {READ} FROM clean_records WHERE at BETWEEN ? AND ? ORDER BY seq", (start, end)
        )
        return [_row(f) for f in found]

    def earliest(self) -> tuple[list[Row], dict[str, Any]]:
        found = self._all(f"SELECT {READ} FROM clean_records WHERE seq <= ? ORDER BY seq", (self.first_kept,))
        return [_row(f) for f in found], _bounds(found)

    def last_seq(self) -> int:
        return int(self._all("SELECT coalesce(max(seq), 0) FROM clean_records")[0][0])

    # The champion and its reference.
    def model_window(self, version: str, start: float, end: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO model_windows VALUES (?, ?, ?, ?)", (version, start, end, time.time())
            )
            self._db.execute(
                "DELETE FROM model_windows WHERE version NOT IN "
                "(SELECT version FROM model_windows ORDER BY seen DESC LIMIT ?)",
                (MODEL_WINDOWS_KEPT,),
            )

    def window_of(self, version: str) -> tuple[float, float] | None:
        found = self._all("SELECT start, end FROM model_windows WHERE version = ?", (version,))
        return (found[0][0], found[0][1]) if found else None

    def promote(self, version: str, at: float) -> bool:
        """Record a champion unless a later promotion is already known (redelivery). True if taken."""
        current = self.champion()
        if current is not None and current[1] > at:
            return False
        self._run("INSERT OR REPLACE INTO champion VALUES ('champion', ?, ?)", (version, at))
        return True

    def champion(self) -> tuple[str, float] | None:
        found = self._all("SELECT version, at FROM champion WHERE name = 'champion'")
        return (found[0][0], found[0][1]) if found else None

    def reference(self, version: str) -> tuple[list[Row], int] | None:
        """The frozen sample of `version` and how many kept records its window held when it was taken."""
        found = self._all("SELECT rows, in_window FROM reference WHERE version = ?", (version,))
        return (json.loads(found[0][0]), found[0][1]) if found else None

    def freeze_reference(self, version: str, rows: list[Row], in_window: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM reference WHERE version != ?", (version,))
            self._db.execute(
                "INSERT OR REPLACE INTO reference VALUES (?, ?, ?, ?)",
                (version, json.dumps(rows), len(rows), in_window),
            )

    # Requests and the index.
    def request(self, report_id: str, trigger: str, window: tuple[float, float] | None = None) -> None:
        with self._lock:
            add_requests(self._db, [(report_id, trigger, None)], window)

    def requests(self) -> list[Pending]:
        found = self._all(
            "SELECT id, trigger, window_start, window_end FROM report_requests ORDER BY at, rowid"
        )
        return [Pending(i, t, None if s is None or e is None else (s, e)) for i, t, s, e in found]

    def flagged(self, report_ids: list[str]) -> list[str]:
        """The features named by the data-drift events behind these requests, in request order."""
        marks = ",".join("?" * len(report_ids))
        found = self._all(
            f"SELECT feature FROM report_requests WHERE id IN ({marks}) AND feature IS NOT NULL"
            " ORDER BY at, rowid",
            tuple(report_ids),
        )
        return list(dict.fromkeys(f for (f,) in found))

    def is_requested(self, report_id: str) -> bool:
        return bool(self._all("SELECT 1 FROM report_requests WHERE id = ?", (report_id,)))

    def write(self, report_id: str, html: str, evidently_json: str, summary: Row, aliases: list[str]) -> None:
        """Files first (atomically), then the index rows, then the requests are done."""
        for suffix, text in ((".html", html), (".json", evidently_json)):
            if text:
                tmp = self.path(report_id, suffix + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.path(report_id, suffix))
        ids = [report_id, *aliases]
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)",
                    (report_id, report_id, time.time(), json.dumps(summary)),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, NULL)",
                    [(a, report_id, time.time()) for a in aliases],
                )
                db.executemany("DELETE FROM report_requests WHERE id = ?", [(i,) for i in ids])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def summary(self, report_id: str) -> Row | None:
        found = self._all(
            "SELECT r.summary FROM reports a JOIN reports r ON r.id = a.report WHERE a.id = ?", (report_id,)
        )
        return json.loads(found[0][0]) if found and found[0][0] else None

    def summaries(self, limit: int) -> list[Row]:
        found = self._all(
            "SELECT summary FROM reports WHERE id = report ORDER BY created DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [json.loads(s) for (s,) in found]

    def prune(self, kept: int) -> int:
        """Keep the newest `kept` reports (files and index rows); returns how many were removed."""
        old = [
            r
            for (r,) in self._all(
                "SELECT id FROM reports WHERE id = report"
                " ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?",
                (kept,),
            )
        ]
        for report_id in old:
            for suffix in (".html", ".json"):
                self.path(report_id, suffix).unlink(missing_ok=True)
            self._run("DELETE FROM reports WHERE report = ?", (report_id,))
        return len(old)

    def path(self, report_id: str, suffix: str) -> Path:
        """A file of the report. Ids are checked at the edge; this refuses anything outside the folder."""
        path = (self.dir / f"{report_id}{suffix}").resolve()
        if path.parent != self.dir:
            raise ValueError(f"report id {report_id!r} leaves the reports folder")
        return path

    def ping(self) -> bool:
        return self._all("SELECT 1") == [(1,)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


READ = "seq, at, body, score, predicted, truth, model_version"


def _row(found: tuple[Any, ...]) -> Row:
    """A kept record: its features, and its prediction and label under the names of report_summary."""
    _, _, body, score, predicted, truth, version = found
    row: Row = json.loads(body)
    if score is not None:
        row |= {SCORE: score, PREDICTED: predicted, VERSION: version}
    if truth is not None:
        row[LABEL] = truth
    return row


def _bounds(found: list[tuple[Any, ...]]) -> dict[str, Any]:
    if not found:
        return {"rows": 0}
    ats = [f[1] for f in found]
    return {
        "rows": len(found),
        "first_seq": found[0][0],
        "last_seq": found[-1][0],
        "start": min(ats),
        "end": max(ats),
    }
