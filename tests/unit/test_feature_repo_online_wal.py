"""The local profile's SQLite online store is in WAL mode: serving reads an entity's features while the
features service holds a write transaction open, where Feast's default journal made it wait."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from feature_repo import FeatureStoreSettings, feature_refs, open_store
from feature_repo.names import ENTITY_KEY
from feature_repo.store import _write_ahead_log
from services.features.adapters.feast_push import FeastPusher
from workbench.feature_rows import demo_feature_rows


def _rows(n: int) -> list[dict[str, Any]]:
    return demo_feature_rows(n, seed=5, id_prefix="wal")


def test_serving_reads_features_while_a_writer_holds_an_exclusive_transaction(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    pusher = FeastPusher(settings)
    pusher.open()
    rows = _rows(5)
    pusher.push(rows)
    with sqlite3.connect(tmp_path / "online.db") as fresh:  # as any process opens it
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    writer = sqlite3.connect(tmp_path / "online.db", isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")  # in the rollback journal, this shuts every reader out
        (table,) = writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        writer.execute(f'DELETE FROM "{table}"')  # not committed: readers see the rows as they were
        reader = open_store(settings)
        read = reader.get_online_features(
            features=feature_refs(), entity_rows=[{ENTITY_KEY: r[ENTITY_KEY]} for r in rows]
        ).to_dict()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert read["credit_amount"] == [r["credit_amount"] for r in rows]


def test_a_store_busy_at_open_is_left_in_its_mode_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "online.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        with caplog.at_level(logging.WARNING, logger="feature_repo.store"):
            _write_ahead_log(path, timeout_s=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "left in its journal mode" in caplog.text
    with sqlite3.connect(path) as fresh:
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    _write_ahead_log(path)  # the next open, with nobody in the way, switches it
    with sqlite3.connect(path) as fresh:
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "sqlite"},
        {"path": "data/online.db"},
        {"type": "feast.infra.online_stores.sqlite.SqliteOnlineStore"},
    ],
    ids=["type without path", "path without type", "the class's name"],
)
def test_every_spelling_of_feasts_sqlite_store_opens_and_is_switched(
    tmp_path: Path, config: dict[str, str]
) -> None:
    """What Feast accepts as its SQLite store opens (no KeyError at start) and gets WAL, at Feast's own
    default path (data/online.db under the repo) when none is given."""
    settings = FeatureStoreSettings(tmp_path, online_store_config=config)
    pusher = FeastPusher(settings)
    pusher.open()
    pusher.push(_rows(3))
    with sqlite3.connect(tmp_path / "data" / "online.db") as fresh:
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert fresh.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] >= 1


def test_a_file_that_is_not_a_database_is_left_for_feast_to_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "online.db"
    path.write_bytes(b"this is not a database file, but it is long enough to look like one" * 20)
    with caplog.at_level(logging.WARNING, logger="feature_repo.store"):
        _write_ahead_log(path)  # no exception: the service starts, and Feast names the problem on use
    assert "left in its journal mode" in caplog.text
