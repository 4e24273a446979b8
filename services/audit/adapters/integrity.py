"""Read-only queries verify needs beyond the store's port: are the append-only guards still in place,
and which Kafka coordinates does the store hold, partition by partition, in offset order."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator

from sqlalchemy import Engine, func, select, text

from services.audit.adapters.schema import audit_events as t
from services.audit.domain.anchors import SHOWN, StoredCoordinate

_migration = importlib.import_module("services.audit.migrations.versions.0001_audit_events")
_SPACE = re.compile(r"\s+")
_POSTGRES_TRIGGERS = ("audit_events_no_update_delete", "audit_events_no_truncate")


def missing_guards(engine: Engine) -> list[str]:
    """The append-only guards that are gone, disabled or changed (empty when all are as migrated)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            found: dict[str, str] = dict(
                conn.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
                    {"table": _migration.GUARDED},
                ).all()
            )
            return [
                f"trigger {name} is missing or not as migrated"
                for name, sql in _sqlite_guards().items()
                if _normal(found.get(name) or "") != sql
            ]
        if conn.dialect.name == "postgresql":
            return _postgres_missing(conn.execute)
    return []  # other databases have no guards to check (the migration creates none there)


def _sqlite_guards() -> dict[str, str]:
    guards = {}
    for statement in _migration.SQLITE_GUARDS:
        normal = _normal(statement)
        guards[normal.split()[2]] = normal  # CREATE TRIGGER <name> ...
    return guards


def _postgres_missing(execute: object) -> list[str]:
    rows = execute(  # type: ignore[operator]
        text(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = :table AND NOT t.tgisinternal"
        ),
        {"table": _migration.GUARDED},
    ).all()
    enabled = {name for name, state in rows if state in ("O", "A")}
    missing = [f"trigger {name} is missing or disabled" for name in _POSTGRES_TRIGGERS if name not in enabled]
    body = execute(  # type: ignore[operator]
        text("SELECT prosrc FROM pg_proc WHERE proname = 'audit_events_refuse'")
    ).scalar()
    if not body or "RAISE EXCEPTION" not in body.upper():
        missing.append("function audit_events_refuse is missing or no longer refuses")
    return missing


def _normal(sql: str) -> str:
    return _SPACE.sub(" ", sql).strip()


def stored_partitions(engine: Engine) -> dict[tuple[str, int], int]:
    """(topic, partition) -> highest offset stored there."""
    statement = select(t.c.topic, t.c.partition, func.max(t.c.offset)).group_by(t.c.topic, t.c.partition)
    with engine.connect() as conn:
        return {(topic, partition): int(top) for topic, partition, top in conn.execute(statement)}


def stored_coordinates(
    engine: Engine, topic: str, partition: int, chunk: int = 20_000
) -> Iterator[StoredCoordinate]:
    """Rows of one partition in offset order (the coordinates' unique index serves it)."""
    statement = (
        select(t.c.seq, t.c.offset, t.c.key_sha256, t.c.value_sha256, t.c.body, *(t.c[c] for c in SHOWN))
        .where(t.c.topic == topic, t.c.partition == partition)
        .order_by(t.c.offset)
    )
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=chunk).execute(statement)
        for rows in result.partitions():
            for seq, offset, key_sha, value_sha, body, *shown in rows:
                yield StoredCoordinate(seq, offset, key_sha, value_sha, body, tuple(shown) if body else ())
