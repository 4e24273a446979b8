"""What an attacker holding the audit database file does with sqlite3 (tests/e2e/test_audit_service.py):
copy it, append a correctly chained forged row, and recompute the hashes after an edit."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from services.audit.domain.chain import CHAIN_FIELDS, GENESIS, ROW_FIELDS, Head, extend, link
from services.audit.domain.entry import Captured, to_entry


def copy(db: Path, to: Path) -> Path:
    with sqlite3.connect(db, timeout=30) as source, sqlite3.connect(to) as target:
        source.backup(target)
    return to


_COLUMNS = ", ".join(f'"{name}"' for name in ROW_FIELDS)


def append(db: Path, message: Captured) -> None:
    """The attacker's INSERT: the row chained after the head exactly as the service would chain it."""
    with sqlite3.connect(db, timeout=30) as conn:
        seq, row_hash = conn.execute(
            "SELECT seq, row_hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        rows, _ = extend(Head.of(seq, row_hash), [to_entry(message)], time.time_ns() // 1000)
        conn.executemany(
            f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({', '.join('?' * len(ROW_FIELDS))})", rows
        )


def rechain(db: Path, first: int) -> None:
    """Recompute every hash from row `first` on, so the edited chain is consistent with itself."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq").fetchall()
        prev = bytes.fromhex(rows[first - 2][-1]) if first > 1 else GENESIS
        for row in rows[first - 1 :]:
            prev = link(prev, row[: len(CHAIN_FIELDS)], row[len(CHAIN_FIELDS)])
            conn.execute("UPDATE audit_events SET row_hash = ? WHERE seq = ?", (prev.hex(), row[0]))
