"""Engines for the audit store: SQLite in WAL mode by default, PostgreSQL (or anything SQLAlchemy
speaks) by URL. Appends run on a writer engine that takes the write lock when its transaction begins,
so concurrent appenders (threads or processes) serialize instead of forking the chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(writer, reader) engines for `url`."""
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True), create_engine(url, pool_pre_ping=True)
    args = {"check_same_thread": False, "timeout": 30}
    writer = create_engine(url, connect_args=args)
    reader = create_engine(url, connect_args=args)
    for engine in (writer, reader):
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(writer, "begin", _begin_immediate)
    return writer, reader


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (see _begin_immediate)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a committed batch survives the process being killed; only an OS crash may lose
    # the last commits, which Kafka then redelivers (offsets are committed after the transaction).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the hot index pages of big tables
    cursor.execute("PRAGMA wal_autocheckpoint=16384")  # fewer, larger checkpoints
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_for_append(connection: Connection) -> None:
    """Serialize appenders on servers (SQLite already holds its write lock from BEGIN IMMEDIATE)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
