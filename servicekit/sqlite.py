"""The SQLite file a service keeps its own state in (ledgers, outboxes, small stores), opened one way.

Opened on first use, so building an app touches no disk: the folder is made, the journal is WAL
(readers never block the writer), `synchronous=NORMAL` (a commit survives a killed process; only an
operating-system crash can lose the last commits, which at-least-once delivery then replays), a busy
timeout for other processes, and the schema statements run once. One connection is shared by the
event loop and worker threads under a lock; `transaction()` is one atomic unit of work.

>>> import tempfile, pathlib
>>> db = SqliteDatabase(pathlib.Path(tempfile.mkdtemp()) / "s.db", ["CREATE TABLE t (x INTEGER)"])
>>> with db.transaction() as conn:
...     _ = conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
>>> with db.connection() as conn:
...     conn.execute("SELECT SUM(x) FROM t").fetchone()[0]
3
>>> db.ping(), db.close()
(True, None)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class SqliteDatabase:
    """`path=None` keeps the database in memory (tests)."""

    def __init__(self, path: Path | None, schema: Sequence[str] = (), busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.schema = tuple(schema)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path or ":memory:",
                check_same_thread=False,
                isolation_level=None,
                timeout=self.busy_timeout_s,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in self.schema:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The connection, in autocommit mode, for reads and single statements."""
        with self._lock:
            yield self._open()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: committed when the block ends, rolled back if it raises."""
        with self._lock:
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ping(self) -> bool:
        with self.connection() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
