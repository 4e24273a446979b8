"""Batch scoring's read of the offline store: a window of rows, each once. The store is at-least-once (a
batch in flight when a features instance dies is appended again, identical), so the read drops copies
of a row, and only copies: a row that differs in any value is another row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feature_repo import offline
from services.features.adapters.feast_push import append_offline, rows_frame
from services.serving.adapters.offline_rows import rows_between
from services.serving.domain.batch import BadInput
from tests.unit.test_features_offline_append import rows

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_batch_appended_twice_is_read_once_in_append_order(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    append_offline(store, rows_frame(rows(0, 10)))
    append_offline(store, rows_frame(rows(5, 3)))  # pushed again after a crash
    changed = rows(6, 1)
    changed[0]["duration_in_month"] = 99  # same entity and time, another value: not a copy
    append_offline(store, rows_frame(changed))

    table = rows_between(store, START, START + timedelta(days=1))
    assert table.column("application_id").to_pylist() == [f"app-{i}" for i in range(10)] + ["app-6"]
    assert table.column("duration_in_month").to_pylist()[-1] == 99
    window = rows_between(store, START + timedelta(seconds=5), START + timedelta(seconds=7))
    assert window.column("application_id").to_pylist() == ["app-5", "app-6", "app-6"]


def test_an_empty_window_is_bad_input(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    append_offline(store, rows_frame(rows(0, 3)))
    with pytest.raises(BadInput, match="no data"):
        rows_between(store, START - timedelta(days=2), START - timedelta(days=1))
