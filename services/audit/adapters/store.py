"""The SQL audit store: append a batch (deduplicated, chained, one transaction), stream the chain,
and answer queries with bound parameters only (SQLAlchemy Core; never string-built SQL)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, create_engine, func, insert, select
from sqlalchemy.pool import NullPool

from services.audit.adapters.engine import lock_for_append, make_engines
from services.audit.adapters.migrate import upgrade
from services.audit.adapters.query import EventQuery
from services.audit.adapters.schema import audit_events as t
from services.audit.adapters.subject_keys import SubjectKeys, SubjectSecretMissing, truncate_sqlite_wal
from services.audit.domain.chain import ROW_FIELDS, Head, extend
from services.audit.domain.entry import Entry, erasure_entry

_ROW_COLUMNS = [t.c[name] for name in ROW_FIELDS]
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class AppendResult:
    appended: int
    duplicates: int
    head: Head
    by_topic: Counter[str] = field(default_factory=Counter)
    undecodable: Counter[str] = field(default_factory=Counter)
    last_event_id: str | None = None


@dataclass(frozen=True)
class Erasure:
    subject_ref: str
    keys_deleted: int
    """1 when the subject had a data key (now gone), 0 when it had none (nothing readable was held)."""
    seq: int
    """Sequence number of the chained erasure row."""
    request_id: str
    erased_at_us: int
    wal_truncated: bool | None
    """SQLite: whether the WAL (which may still hold the deleted key's page) was truncated; None on
    servers (see "Erasure" in docs/audit.md)."""


class SqlAuditStore:
    """`app_role` (PostgreSQL): the role the store's sessions run as after `migrate`, which grants it
    SELECT and INSERT only on the chain (see AuditSettings.database_app_role).

    `subject_keys`: seals what identifies a data subject before it is chained and opens it for
    readers (crypto-shredding). Without it the store refuses to append identifying data, and reads
    leave sealed values sealed."""

    def __init__(
        self, url: str, app_role: str | None = None, subject_keys: SubjectKeys | None = None
    ) -> None:
        self.url = url
        self.app_role = app_role
        self.subject_keys = subject_keys
        self.writer, self.reader = make_engines(url, app_role)
        self._lock = threading.Lock()  # one appender per process; the database serializes processes
        self._positional_insert: str | None = None
        if self.writer.dialect.paramstyle == "qmark":
            compiled = insert(t).compile(dialect=self.writer.dialect, column_keys=list(ROW_FIELDS))
            if list(compiled.positiontup or ()) != list(ROW_FIELDS):
                raise RuntimeError("audit_events columns are not in ROW_FIELDS order")
            self._positional_insert = str(compiled)

    def migrate(self) -> None:
        """Create or upgrade the schema (for SQLite, the database's folder first). On a server this runs
        as the URL's own user (the owner), not as the application role."""
        database = self.writer.url.database
        if self.writer.dialect.name == "sqlite":
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            upgrade(self.writer)
            return
        owner = create_engine(self.url, poolclass=NullPool)
        try:
            upgrade(owner, app_role=self.app_role)
        finally:
            owner.dispose()

    def ping(self) -> bool:
        with self.reader.connect() as conn:
            return conn.execute(select(1)).scalar() == 1

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()

    # -- append ----------------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry], recorded_at_us: int) -> AppendResult:
        """Skip what is already stored (same event id, or same Kafka coordinates), chain the rest after
        the current head and insert them, all in one transaction."""
        with self._lock, self.writer.begin() as conn:
            lock_for_append(conn)
            fresh = self._seal(conn, self._fresh(conn, entries), recorded_at_us)
            head = self._head(conn)
            rows, new_head = extend(head, fresh, recorded_at_us)
            if rows:
                self._insert(conn, rows)
        last_id = next((e.event_id for e in reversed(fresh) if e.event_id), None)
        return AppendResult(
            appended=len(fresh),
            duplicates=len(entries) - len(fresh),
            head=new_head,
            by_topic=Counter(e.topic for e in fresh),
            undecodable=Counter(e.topic for e in fresh if e.kind == "undecodable"),
            last_event_id=last_id,
        )

    def _fresh(self, conn: Connection, entries: Sequence[Entry]) -> list[Entry]:
        if conn.dialect.name == "postgresql":
            # Until autovacuum's first ANALYZE (a minute or more into a fresh chain) PostgreSQL has no
            # statistics and plans `event_id IN (500 ids)` as a scan of the whole table per chunk;
            # these lookups always want the indexes (for this transaction only).
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        ids = [e.event_id for e in entries if e.event_id]
        known_ids: set[str] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            known_ids.update(conn.execute(select(t.c.event_id).where(t.c.event_id.in_(chunk))).scalars())
        known_coordinates: set[tuple[str, int, int]] = set()
        for (topic, partition), offsets in _offsets_by_partition(entries).items():
            stored = conn.execute(
                select(t.c.offset).where(
                    t.c.topic == topic,
                    t.c.partition == partition,
                    t.c.offset.between(min(offsets), max(offsets)),
                )
            ).scalars()
            known_coordinates.update((topic, partition, offset) for offset in stored)
        fresh: list[Entry] = []
        for entry in entries:
            coordinates = (entry.topic, entry.partition, entry.offset)
            if coordinates in known_coordinates or (entry.event_id and entry.event_id in known_ids):
                continue
            known_coordinates.add(coordinates)
            if entry.event_id:
                known_ids.add(entry.event_id)
            fresh.append(entry)
        return fresh

    def _seal(self, conn: Connection, entries: list[Entry], now_us: int) -> list[Entry]:
        if not any(e.decoded is not None or e.raw_subject is not None for e in entries):
            return entries
        return self._keys().seal_entries(conn, entries, now_us)

    def _keys(self) -> SubjectKeys:
        if self.subject_keys is None:
            raise SubjectSecretMissing("identifying data arrived but the store has no subject secret")
        return self.subject_keys

    # -- erase -------------------------------------------------------------------------------------
    def erase(self, subject_id: str, requested_by: str, now_us: int | None = None) -> Erasure:
        """Delete the subject's data key and chain an erasure row (its reference only), in one
        transaction under the append lock, so no batch is sealed with the key meanwhile."""
        keys = self._keys()
        ref, request_id = keys.ref(subject_id), str(uuid.uuid4())
        now_us = now_us if now_us is not None else time.time_ns() // 1000
        with self._lock, self.writer.begin() as conn:
            lock_for_append(conn)
            deleted = keys.delete(conn, ref)
            head = self._head(conn)
            entry = erasure_entry(ref, requested_by, request_id, now_us, head.length + 1)
            rows, new_head = extend(head, [entry], now_us)
            self._insert(conn, rows)
        return Erasure(ref, deleted, new_head.length, request_id, now_us, truncate_sqlite_wal(self.writer))

    def _insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        if self._positional_insert is not None:  # SQLite: straight to executemany, no per-row dicts
            conn.exec_driver_sql(self._positional_insert, rows)
        else:
            conn.execute(insert(t), [dict(zip(ROW_FIELDS, row, strict=True)) for row in rows])

    @staticmethod
    def _head(conn: Connection) -> Head:
        last = conn.execute(select(t.c.seq, t.c.row_hash).order_by(t.c.seq.desc()).limit(1)).first()
        return Head.of(last.seq, last.row_hash) if last else Head.empty()

    # -- read --------------------------------------------------------------------------------------
    def head(self) -> tuple[Head, str | None]:
        """The chain head and the event id of the newest event row."""
        with self.reader.connect() as conn:
            head = self._head(conn)
            last_id = conn.execute(
                select(t.c.event_id).where(t.c.event_id.is_not(None)).order_by(t.c.seq.desc()).limit(1)
            ).scalar()
        return head, last_id

    def chain_rows(
        self, first: int = 1, last: int | None = None, chunk: int = 20_000
    ) -> Iterator[tuple[Any, ...]]:
        """Rows `first`..`last` in sequence order (ROW_FIELDS order), as plain tuples: fetched in chunks
        from the driver's cursor (server-side where the driver has one), flattened in C."""
        return itertools.chain.from_iterable(self._chain_chunks(first, last, chunk))

    def _chain_chunks(self, first: int, last: int | None, chunk: int) -> Iterator[Sequence[tuple[Any, ...]]]:
        statement = select(*_ROW_COLUMNS).where(t.c.seq >= first).order_by(t.c.seq)
        if last is not None:
            statement = statement.where(t.c.seq <= last)
        with self.reader.connect() as conn:
            if conn.dialect.name == "sqlite":  # sqlite3 steps lazily: read its cursor, no Row objects
                cursor = conn.execute(statement).cursor
                while batch := cursor.fetchmany(chunk):
                    yield batch
                return
            result = conn.execution_options(yield_per=chunk).execute(statement)
            for rows in result.partitions():
                yield [tuple(row) for row in rows]

    def appended_after(self, seq: int, excluding_topic: str | None = None) -> bool:
        """Whether a row follows row `seq` that is not from `excluding_topic` (whoever appended it)."""
        statement = select(t.c.seq).where(t.c.seq > seq)
        if excluding_topic is not None:
            statement = statement.where(t.c.topic != excluding_topic)
        with self.reader.connect() as conn:
            # In seq order: the planner walks the primary key from `seq` (not a scan of the whole table
            # on a fresh chain without statistics, the trap `_fresh` describes).
            return conn.execute(statement.order_by(t.c.seq).limit(1)).first() is not None

    def stored_hash(self, seq: int) -> str | None:
        with self.reader.connect() as conn:
            return conn.execute(select(t.c.row_hash).where(t.c.seq == seq)).scalar()

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Matching rows, with the sealed values of every subject that still has a key opened. By
        entity: the subject's reference is matched (and the clear id, for rows chained before sealing)."""
        order = t.c.seq.desc() if query.newest_first else t.c.seq
        conditions = query.conditions()
        if query.entity_id is not None and self.subject_keys is not None:
            by_ref = t.c.entity_id.in_([query.entity_id, self.subject_keys.ref(query.entity_id)])
            conditions = [*replace(query, entity_id=None).conditions(), by_ref]
        statement = select(t).where(and_(True, *conditions)).order_by(order).limit(query.limit)
        with self.reader.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(statement)]
            return self.subject_keys.open_rows(conn, rows) if self.subject_keys is not None else rows

    def first(self, **filters: Any) -> dict[str, Any] | None:
        found = self.events(EventQuery(limit=1, **filters))
        return found[0] if found else None

    def last(self, **filters: Any) -> dict[str, Any] | None:
        found = self.events(EventQuery(limit=1, newest_first=True, **filters))
        return found[0] if found else None

    def counts(self) -> list[tuple[str, str, int]]:
        """(kind, event type or topic, rows) for every kind of row stored."""
        label = func.coalesce(t.c.event_type, t.c.topic)
        statement = select(t.c.kind, label, func.count()).group_by(t.c.kind, label).order_by(t.c.kind, label)
        with self.reader.connect() as conn:
            return [(kind, name, count) for kind, name, count in conn.execute(statement)]


def _offsets_by_partition(entries: Sequence[Entry]) -> dict[tuple[str, int], list[int]]:
    grouped: dict[tuple[str, int], list[int]] = {}
    for entry in entries:
        grouped.setdefault((entry.topic, entry.partition), []).append(entry.offset)
    return grouped
