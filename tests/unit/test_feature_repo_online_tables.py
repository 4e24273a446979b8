"""Feast's SQLite online table keeps one B-tree to update per value, not three: the features service
makes it WITHOUT ROWID and its `<table>_ek` index, which duplicates the primary key's leading column,
an empty partial one (feature_repo/online_tables.py). Reads must use the primary key and return the
same features; an apply by Feast must not bring the full index back; a store made before is converted,
and one whose rows cannot be converted (raw SQL put a NULL in the key) is left working as it was."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bench import feature_push
from feature_repo import FeatureStoreSettings, feature_refs, open_store
from feature_repo.definitions import definitions
from feature_repo.names import ENTITY_KEY, FEATURES
from services.features.adapters.feast_push import FeastPusher
from workbench.feature_rows import demo_feature_rows

READ = "SELECT entity_key, feature_name, value, event_ts FROM {table} WHERE entity_key IN (?, ?)"


def _pushed(settings: FeatureStoreSettings, n: int, prefix: str = "ek") -> list[dict[str, Any]]:
    """`n` rows written as the features service writes them, after its start (which applies)."""
    pusher = FeastPusher(settings)
    pusher.open()
    rows = demo_feature_rows(n, seed=11, id_prefix=prefix)
    pusher.push(rows)
    return rows


def _indexes(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return dict(found.fetchall())


def _table(path: Path) -> str:
    return _definition(path)[0]


def _definition(path: Path) -> tuple[str, str]:
    """The online table's name and its CREATE TABLE statement."""
    with closing(sqlite3.connect(path)) as conn:
        (name, sql) = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchone()
        return str(name), str(sql)


def _without_rowid(path: Path) -> bool:
    return _definition(path)[1].rstrip().endswith("WITHOUT ROWID")


def _plan(path: Path, table: str) -> str:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + READ.format(table=f'"{table}"'), (b"a", b"b")).fetchall()
        return " ".join(str(row[-1]) for row in rows)


def _online(settings: FeatureStoreSettings, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    read = open_store(settings).get_online_features(
        features=feature_refs(), entity_rows=[{ENTITY_KEY: row[ENTITY_KEY]} for row in rows]
    )
    return {name: values for name, values in read.to_dict().items() if name in FEATURES}


def _expected(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in FEATURES}


def test_the_online_table_is_one_b_tree_and_reads_use_its_key(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 30)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    assert _without_rowid(db)
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key) WHERE 0'}
    assert "USING PRIMARY KEY (entity_key=?)" in _plan(db, table)
    assert _online(settings, rows) == _expected(rows)


def test_an_apply_by_feast_leaves_the_empty_index_as_it_is(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 5)
    db = tmp_path / "online.db"
    before = _indexes(db)
    open_store(settings).apply(
        definitions(settings.offline_path)
    )  # Feast's own apply, nothing of ours after it
    assert _indexes(db) == before
    assert _online(settings, rows) == _expected(rows)


def _as_feast_makes_it(settings: FeatureStoreSettings) -> None:
    """The store's table remade by Feast's own apply (a rowid table with the full `_ek` index: the store
    as it was before the features service shaped it), its rows kept."""
    db, table = settings.repo_dir / "online.db", _table(settings.repo_dir / "online.db")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_saved"')
        conn.execute(f'DROP INDEX "{table}_ek"')
    open_store(settings).apply(definitions(settings.offline_path))  # Feast's apply, nothing of ours
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f'INSERT INTO "{table}" SELECT * FROM "{table}_saved"')
        conn.execute(f'DROP TABLE "{table}_saved"')


def _count(db: Path, table: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def test_a_store_as_feast_made_it_is_converted_at_the_next_start(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 40)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    _as_feast_makes_it(settings)
    assert not _without_rowid(db)
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key)'}
    assert _online(settings, rows) == _expected(rows)
    stored = _count(db, table)

    more = _pushed(settings, 10, prefix="after")  # the features service starts again and writes on
    assert _without_rowid(db)
    assert _indexes(db)[f"{table}_ek"].endswith("WHERE 0")
    assert _count(db, table) == stored + 10 * len(FEATURES)
    assert _online(settings, rows) == _expected(rows)
    assert _online(settings, more) == _expected(more)


def test_a_table_whose_rows_cannot_be_converted_is_left_working_as_it_was(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Raw SQL put a row with no feature name in the key (a rowid table lets a key hold NULL; Feast
    never writes one): a WITHOUT ROWID key refuses it, so the table stays a rowid table, whole."""
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 20)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    _as_feast_makes_it(settings)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            f'INSERT INTO "{table}" (entity_key, feature_name, value) VALUES (?, NULL, ?)', (b"k", b"v")
        )
    stored = _count(db, table)

    with caplog.at_level("WARNING", logger="feature_repo.online_tables"):
        more = _pushed(settings, 10, prefix="after")  # the service starts, and writes and reads on
    assert "left as a rowid table" in caplog.text
    assert not _without_rowid(db)
    assert _indexes(db)[f"{table}_ek"].endswith("WHERE 0")  # the index is emptied all the same
    assert _count(db, table) == stored + 10 * len(FEATURES)
    assert _online(settings, rows) == _expected(rows)
    assert _online(settings, more) == _expected(more)


def test_the_bench_undoes_each_step_it_measures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench/feature_push.py's ways must write into the tables they name (a rowid table; then Feast's
    full index on it too), or its ratios would compare the shaped table with itself."""
    _pushed(FeatureStoreSettings(tmp_path), 3)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    feature_push._restore_rowids(db)
    assert not _without_rowid(db)
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key) WHERE 0'}
    assert _count(db, table) == 3 * len(FEATURES)
    feature_push._restore_feasts_index(db)
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key)'}

    feature_push.main(["--records", "200", "--batch", "50", "--runs", "1", "--reads", "20"])
    found = json.loads(capsys.readouterr().out)
    assert set(found["median_cpu_us_per_record"]) == set(feature_push.WAYS)
    assert set(found["read_cpu_us"]) == set(feature_push.WAYS)
    assert found["rowid_over_direct"]["write_paired"] > 0
    assert found["feast_index_over_rowid"]["read_paired"] > 0
    sizes = found["online_store_mib"]
    assert (
        sizes["direct_feast_table"] > sizes["direct_rowid"] > sizes["direct"] > 0
    )  # each B-tree takes pages


def test_the_rebuild_keeps_every_column_as_declared(tmp_path: Path) -> None:
    """Types, NOT NULL, defaults and the key's column order survive the rebuild, and so do the rows."""
    from feature_repo.online_tables import _rebuild_without_rowid

    db = tmp_path / "t.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(
            'CREATE TABLE "odd ""name""" (feature_name TEXT NOT NULL DEFAULT \'x\', entity_key BLOB, n REAL,'
            " untyped, PRIMARY KEY(entity_key, feature_name))"
        )
        conn.executemany(
            'INSERT INTO "odd ""name""" VALUES (?, ?, ?, ?)', [("a", b"k1", 1.5, None), ("b", b"k1", None, 3)]
        )
        before = conn.execute("PRAGMA table_info('odd \"name\"')").fetchall()
        _rebuild_without_rowid(conn, 'odd "name"')
        # As declared; a WITHOUT ROWID key's columns are NOT NULL besides (what a NULL there fails on).
        declared = [
            (cid, name, kind, 1 if pk else not_null, default, pk)
            for cid, name, kind, not_null, default, pk in before
        ]
        assert conn.execute("PRAGMA table_info('odd \"name\"')").fetchall() == declared
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        assert sql.endswith("WITHOUT ROWID")
        rows = conn.execute('SELECT * FROM "odd ""name""" ORDER BY feature_name').fetchall()
        assert rows == [("a", b"k1", 1.5, None), ("b", b"k1", None, 3)]
