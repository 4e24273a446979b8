"""The offline store's append is safe for readers: one holding the offline lock (as training's retrieval
does, from its own process in production) never opens a torn file while batches are appended."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feature_repo.names import CATEGORICAL_FEATURES, FLOAT_FEATURES, NUMERIC_FEATURES
from feature_repo.store import _ensure_offline_file, offline_lock
from services.features.adapters.feast_push import append_offline, rows_frame


def rows(start: int, n: int) -> list[dict[str, object]]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[dict[str, object]] = []
    for i in range(start, start + n):
        row: dict[str, object] = {"application_id": f"app-{i}", "applied_at": at + timedelta(seconds=i)}
        row |= {f: (1.5 if f in FLOAT_FEATURES else 7) for f in NUMERIC_FEATURES}
        row |= {f: "A11" for f in CATEGORICAL_FEATURES}
        out.append(row)
    return out


def test_appends_keep_every_row_and_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "offline.parquet"
    _ensure_offline_file(path)
    errors: list[BaseException] = []
    counts: list[int] = []
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            try:
                with offline_lock(path, exclusive=False):  # as training's retrieval holds it
                    counts.append(pq.read_table(path).num_rows)
            except Exception as err:  # what the in-place rewrite caused: "file size is 0 bytes"
                errors.append(err)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for batch in range(40):
            append_offline(path, rows_frame(rows(batch * 50, 50)))  # type: ignore[arg-type]
    finally:
        done.set()
        reader.join()
    assert not errors, errors[:3]
    assert len(counts) > 10 and counts == sorted(counts)  # read while writing; never went back
    table = pq.read_table(path)
    assert table.num_rows == 2000 and len(set(table.column("application_id").to_pylist())) == 2000
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_frame_with_other_columns_is_refused_and_the_file_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "offline.parquet"
    _ensure_offline_file(path)
    frame = rows_frame(rows(0, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ from the offline file"):
        append_offline(path, frame.drop(columns=[NUMERIC_FEATURES[0]]))
    assert pq.read_table(path).num_rows == 0
