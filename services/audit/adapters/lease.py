"""Which audit instance publishes the checkpoints: one at a time, and the lease ends with its holder.

Every instance appends: the database serializes appends (adapters/engine.py, `lock_for_append`), and
the store skips what another instance already appended, so the chain stays one line however many
instances write it. Checkpoints want one publisher, or each instance would sign the same heads.

The lease is a session-level advisory lock on PostgreSQL, held on a connection of its own, and an
exclusive `flock` of a file beside the database on SQLite. The server, or the kernel, releases either
when its holder dies, however it dies (SIGKILL included), so a standby takes over at its next tick. Two
publishers for a moment (a holder whose connection was just dropped and does not know it yet) are
harmless: each checkpoint is a signed (length, head) pair that verify checks on its own.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from servicekit.standby import FileLease

CHECKPOINT_LOCK_KEY = 0x617564697401  # "audit\1": not APPEND_LOCK_KEY, which appenders take per transaction
TRY_LOCK = f"SELECT pg_try_advisory_lock({CHECKPOINT_LOCK_KEY})"


class CheckpointLease:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None  # PostgreSQL: the session that holds the lock
        self._file: FileLease | None = None  # SQLite: the flock of a file beside the database
        # `held` runs in worker threads; `release` on stop may come while one is still inside it.
        self._guard = threading.Lock()
        self._released = False

    def held(self) -> bool:
        """Whether this instance holds the lease now, taking it when it is free. A database that cannot
        be reached raises (the caller waits for it), rather than passing for another holder. After
        `release`, never: a stopping instance does not take the lease back."""
        with self._guard:
            if self._released:
                return False
            if self.engine.dialect.name == "sqlite":
                return self._held_file()
            return self._held_advisory()

    def release(self) -> None:
        with self._guard:
            self._released = True
            if self._connection is not None:
                self._drop_connection()
            if self._file is not None:
                self._file.release()

    # -- PostgreSQL ----------------------------------------------------------------------------------
    def _held_advisory(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.exec_driver_sql("SELECT 1")
                return True  # the session that took the lock is alive, so the lock is still ours
            except SQLAlchemyError:
                self._drop_connection()  # the server dropped it (a restart): the lock went with it
        # AUTOCOMMIT: the held session never idles inside a transaction (which would pin old rows).
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = bool(connection.exec_driver_sql(TRY_LOCK).scalar())
        except SQLAlchemyError:
            connection.invalidate()
            connection.close()
            raise
        if taken:
            self._connection = connection
        else:
            connection.close()
        return taken

    def _drop_connection(self) -> None:
        assert self._connection is not None
        # Unlocked now: a closed socket alone leaves the lock to the server's backend until it sees the
        # client gone, so a standby asking at once could still find it taken (a flaky handover). On a
        # session the server dropped this fails, and the lock went with the session.
        with contextlib.suppress(SQLAlchemyError):
            self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({CHECKPOINT_LOCK_KEY})")
        try:
            # Not back to the pool: a pooled session would keep the lock for whoever borrows it next.
            self._connection.invalidate()
            self._connection.close()
        except SQLAlchemyError:
            pass
        self._connection = None

    # -- SQLite --------------------------------------------------------------------------------------
    def _held_file(self) -> bool:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True  # a database no other process can open: this instance is the only one
        if self._file is None:
            self._file = FileLease(Path(f"{database}.checkpoint-lease"))
        return self._file.try_acquire()
