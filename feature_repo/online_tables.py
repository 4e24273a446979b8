"""The shape of each view's table in Feast's plain SQLite online store, set after every apply.

Feast makes each table `(entity_key, feature_name, value, ...)` with PRIMARY KEY(entity_key,
feature_name) on a rowid table, plus an index `<table>_ek` on entity_key. That is three B-trees per
table, where one does the job:

- **WITHOUT ROWID.** A rowid table keeps its rows in one B-tree and the primary key in a second, so
  a read of an entity's 20 values walks the key's index, then fetches each row from the table by rowid.
  A WITHOUT ROWID table keeps the rows in the key's own B-tree, an entity's values side by side:
  against the rowid table, the store is 0.61 times the size, serving's read of an entity costs 0.90
  times the CPU and a write 0.94 (medians of nine paired runs; docs/benchmarks.md, "features: the
  online table without rowids"). Feast's SQL (its upsert, its
  `entity_key IN (...)` read, its `ALTER TABLE ... ADD COLUMN`) runs unchanged on it; only its vector
  and text search use rowids, and those stores are not this one (`plain_sqlite_store`).
- **The duplicate index, empty.** The key leads with entity_key already, so `<table>_ek` is one more
  B-tree to update per value and no read uses it: the write costs a median 1.13 times as much with it
  (docs/benchmarks.md, "Feast's duplicate key index"). Feast recreates it on every apply unless one
  of that name exists (`CREATE INDEX IF NOT EXISTS`), so it is replaced, not dropped, by a partial
  index `WHERE 0` of the same name, which holds no row.

A table Feast made (a new view, or a store from before) is rebuilt once, in one transaction: the
rows copied into a WITHOUT ROWID table that then takes the old one's name. Readers in other
processes see the old table or the new, never neither (WAL). If the rows cannot be copied (a NULL in
the key, which a WITHOUT ROWID key refuses and Feast never writes), the table is left as it was.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from feature_repo.store import online_table_id, plain_sqlite_store

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

EMPTY_INDEX_TAIL = "WHERE 0"


def shape_online_tables(store: FeatureStore) -> None:
    """Each view's table WITHOUT ROWID, and its `_ek` index empty (see the module doc). Only on
    Feast's plain SQLite store; others (Redis in the cluster profile) are left alone."""
    sqlite_store = plain_sqlite_store(store.provider, store.config)
    if sqlite_store is None:
        return
    # A connection of its own, in autocommit: whatever Feast's connection holds is left as it is.
    conn = sqlite3.connect(sqlite_store._get_db_path(store.config), timeout=30, isolation_level=None)
    try:
        for view in store.list_feature_views():
            table = online_table_id(store.config, view)
            if not _without_rowid(conn, table):
                _rebuild_without_rowid(conn, table)
            _empty_duplicate_index(conn, table)
    finally:
        conn.close()


def _quote(name: str) -> str:
    """An identifier quoted as Feast quotes its own (its `_quote_id`, which `online_table` uses too)."""
    from feast.infra.online_stores.sqlite import _quote_id

    return str(_quote_id(name))


def _without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    """True when `table` is WITHOUT ROWID (or does not exist: nothing to rebuild)."""
    found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    (sql,) = found.fetchone() or ("WITHOUT ROWID",)
    return " ".join(str(sql).upper().split()).endswith("WITHOUT ROWID")


def _rebuild_without_rowid(conn: sqlite3.Connection, table: str) -> None:
    columns = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()  # cid, name, type, ..., pk
    key = [name for _, name, _, _, _, pk in sorted(columns, key=lambda c: c[5]) if pk]
    if not key:
        log.warning("online store: %s has no primary key; left as a rowid table", table)
        return
    names = ", ".join(_quote(c[1]) for c in columns)
    definitions = ", ".join(
        f"{_quote(name)} {kind}".rstrip() + (" NOT NULL" if not_null else "")
        + (f" DEFAULT {default}" if default is not None else "")
        for _, name, kind, not_null, default, _ in columns
    )  # fmt: skip
    new = table + "__without_rowid"
    conn.execute("BEGIN IMMEDIATE")  # readers in other processes see one table or the other
    try:
        conn.execute(f"DROP TABLE IF EXISTS {_quote(new)}")
        conn.execute(
            f"CREATE TABLE {_quote(new)} ({definitions}, PRIMARY KEY({', '.join(map(_quote, key))})) "
            "WITHOUT ROWID"
        )
        conn.execute(f"INSERT INTO {_quote(new)} ({names}) SELECT {names} FROM {_quote(table)}")
        conn.execute(f"DROP TABLE {_quote(table)}")  # its indexes go with it
        conn.execute(f"ALTER TABLE {_quote(new)} RENAME TO {_quote(table)}")
        conn.execute(
            f"CREATE INDEX {_quote(table + '_ek')} ON {_quote(table)} (entity_key) {EMPTY_INDEX_TAIL}"
        )
    except sqlite3.IntegrityError as err:
        conn.execute("ROLLBACK")
        log.warning("online store: %s left as a rowid table: %s", table, err)
        return
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    log.info("online store: %s is now a WITHOUT ROWID table", table)


def _empty_duplicate_index(conn: sqlite3.Connection, table: str) -> None:
    index = table + "_ek"
    found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,))
    (sql,) = found.fetchone() or (None,)
    if sql is None or sql.rstrip().endswith(EMPTY_INDEX_TAIL):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"DROP INDEX {_quote(index)}")
        conn.execute(f"CREATE INDEX {_quote(index)} ON {_quote(table)} (entity_key) {EMPTY_INDEX_TAIL}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    log.info("online store: the duplicate index %s is now empty", index)
