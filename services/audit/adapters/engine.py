"""Engines for the audit store: SQLite in WAL mode by default, PostgreSQL (or anything SQLAlchemy
speaks) by URL. Appends run on a writer engine that takes the write lock when its transaction begins,
so concurrent appenders (threads or processes) serialize instead of forking the chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

APPEND_LOCK_KEY = 0x617564697400  # "audit\0": the advisory lock appenders take on PostgreSQL


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engines(url: str, app_role: str | None = None) -> tuple[Engine, Engine]:
    """(writer, reader) engines for `url`. On a server, `app_role` is SET on every session they open."""
    if not is_sqlite(url):
        engines = create_engine(url, pool_pre_ping=True), create_engine(url, pool_pre_ping=True)
        if app_role:
            for engine in engines:
                event.listen(engine, "connect", _set_role(engine, app_role))
        return engines
    args = {"check_same_thread": False, "timeout": 30}
    writer = create_engine(url, connect_args=args)
    reader = create_engine(url, connect_args=args)
    for engine in (writer, reader):
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(writer, "begin", _begin_immediate)
    return writer, reader


def _set_role(engine: Engine, role: str) -> Any:
    statement = f"SET ROLE {engine.dialect.identifier_preparer.quote(role)}"

    def set_role(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # a SET in a rolled-back transaction would be undone

    return set_role


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
    """Serialize appenders on servers (SQLite already holds its write lock from BEGIN IMMEDIATE).

    PostgreSQL: a transaction-scoped advisory lock, which needs no table privilege (a LOCK TABLE strong
    enough to serialize would need UPDATE or DELETE, which the application role must not have). Every
    appender takes it before reading the head; the primary key on `seq` refuses a fork regardless."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY})")
