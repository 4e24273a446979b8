"""Feast's SQLite online table keeps one index to update per value, not two: its `<table>_ek` index
duplicates the primary key's leading column, so the features service makes it an empty partial index
(feature_repo.store._empty_duplicate_key_indexes). Reads must use the primary key and return the same
features; an apply by Feast must not bring the full index back; a store made before is converted."""

from __future__ import annotations

import json
import sqlite3
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
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return dict(found.fetchall())


def _table(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (name,) = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        return str(name)


def _plan(path: Path, table: str) -> str:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + READ.format(table=f'"{table}"'), (b"a", b"b")).fetchall()
        return " ".join(str(row[-1]) for row in rows)


def _online(settings: FeatureStoreSettings, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    read = open_store(settings).get_online_features(
        features=feature_refs(), entity_rows=[{ENTITY_KEY: row[ENTITY_KEY]} for row in rows]
    )
    return {name: values for name, values in read.to_dict().items() if name in FEATURES}


def _expected(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in FEATURES}


def test_the_online_table_has_one_key_index_and_reads_use_it(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 30)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key) WHERE 0'}
    assert "sqlite_autoindex" in _plan(db, table)
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


def test_a_store_with_feasts_full_index_is_converted_at_the_next_start(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    rows = _pushed(settings, 40)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    with sqlite3.connect(db) as conn:  # the store as Feast made it before this change
        conn.execute(f'DROP INDEX "{table}_ek"')
        conn.execute(f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key)')
    assert not _indexes(db)[f"{table}_ek"].endswith("WHERE 0")
    with sqlite3.connect(db) as conn:
        stored = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]

    more = _pushed(settings, 10, prefix="after")  # the features service starts again and writes on
    assert _indexes(db)[f"{table}_ek"].endswith("WHERE 0")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == stored + 10 * len(FEATURES)
    assert _online(settings, rows) == _expected(rows)
    assert _online(settings, more) == _expected(more)


def test_the_bench_measures_the_write_with_feasts_full_index_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench/feature_push.py's third way must write into a table with Feast's full index, or its ratio
    would compare the empty index with itself."""
    _pushed(FeatureStoreSettings(tmp_path), 3)
    db, table = tmp_path / "online.db", _table(tmp_path / "online.db")
    feature_push._restore_feasts_index(db)
    assert _indexes(db) == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key)'}

    feature_push.main(["--records", "200", "--batch", "50", "--runs", "1"])
    found = json.loads(capsys.readouterr().out)
    assert set(found["median_cpu_us_per_record"]) == set(feature_push.WAYS)
    assert found["feast_index_over_direct"] > 0
    sizes = found["online_store_mib"]
    assert sizes["direct_feast_index"] > sizes["direct"] > 0  # the full index takes pages; the empty one none
