"""The offline store's append: one new Parquet part per batch, safe for readers (who hold the offline
lock shared, as training's retrieval does from its own process) and for several writer processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from feature_repo import offline
from feature_repo.names import CATEGORICAL_FEATURES, FLOAT_FEATURES, NUMERIC_FEATURES
from feature_repo.store import offline_lock
from infra.settings import REPO_ROOT
from services.features.adapters.feast_push import append_offline, rows_frame


def rows(start: int, n: int, prefix: str = "app") -> list[dict[str, object]]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[dict[str, object]] = []
    for i in range(start, start + n):
        row: dict[str, object] = {"application_id": f"{prefix}-{i}", "applied_at": at + timedelta(seconds=i)}
        row |= {f: (1.5 if f in FLOAT_FEATURES else 7) for f in NUMERIC_FEATURES}
        row |= {f: "A11" for f in CATEGORICAL_FEATURES}
        out.append(row)
    return out


def ids(directory: Path) -> list[str]:
    return [str(i) for i in pq.read_table(directory).column("application_id").to_pylist()]


def test_appends_keep_every_row_once_and_readers_never_see_a_partial_part(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    errors: list[BaseException] = []
    reads: list[tuple[int, int]] = []  # (rows, distinct ids) per read
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            try:
                with offline_lock(store, exclusive=False):  # as training's retrieval holds it
                    seen = ids(store)
                reads.append((len(seen), len(set(seen))))
            except Exception as err:  # what the in-place rewrite caused: "file size is 0 bytes"
                errors.append(err)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for batch in range(80):  # 50 rows: tier 1; eight of them merge, and eight of those
            append_offline(store, rows_frame(rows(batch * 50, 50)))  # type: ignore[arg-type]
    finally:
        done.set()
        reader.join()
    assert not errors, errors[:3]
    assert len(reads) > 10 and all(n == distinct for n, distinct in reads)  # never a row twice
    counts = [n for n, _ in reads]
    assert counts == sorted(counts)  # never went back
    assert sorted(ids(store)) == sorted(f"app-{i}" for i in range(4000))
    assert any(p.kind == "m" for p in offline.parts(store))  # merges ran under the readers
    assert not list(store.glob(".*"))  # no temporary part left


def test_a_frame_with_other_columns_is_refused_and_the_store_is_untouched(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    frame = rows_frame(rows(0, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ from the offline store"):
        append_offline(store, frame.drop(columns=[NUMERIC_FEATURES[0]]))
    assert pq.read_table(store).num_rows == 0 and len(offline.parts(store)) == 1


def test_a_batch_whose_categorical_column_is_all_none_keeps_the_schema(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    batch = rows(0, 4)
    for row in batch:
        row["housing"] = None
    frame = rows_frame(batch)  # type: ignore[arg-type]
    assert str(frame["housing"].dtype) == "object"  # pyarrow alone would make it a `null` column
    append_offline(store, frame)
    append_offline(store, rows_frame(rows(4, 4)))  # type: ignore[arg-type]
    for part in offline.parts(store):
        assert pq.read_schema(part.path).remove_metadata() == offline.offline_schema(), part.path.name
    table = pq.read_table(store)
    assert table.column("housing").to_pylist() == [None] * 4 + ["A11"] * 4


WRITER = """
import sys, time
from pathlib import Path
from tests.unit.test_features_offline_append import rows
from services.features.adapters.feast_push import append_offline, rows_frame
store, prefix, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
frames = [rows_frame(rows(b * 20, 20, prefix)) for b in range(50)]
Path(f"{go}.{prefix}").touch()
while not go.exists():
    time.sleep(0.005)
started = time.time()
for frame in frames:
    append_offline(store, frame)
print(started, time.time())
"""


def test_two_processes_appending_at_once_lose_no_row_and_duplicate_none(tmp_path: Path) -> None:
    store, go = tmp_path / "offline", tmp_path / "go"
    offline.ensure(store)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), prefix, str(go)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for prefix in ("one", "two")
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.{p}").exists() for p in ("one", "two")) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both have imported and built their frames: they start together
    spans = []
    for writer in writers:
        out, _ = writer.communicate(timeout=240)
        assert writer.returncode == 0
        spans.append([float(t) for t in out.split()])
    (start_1, end_1), (start_2, end_2) = spans
    assert start_1 < end_2 and start_2 < end_1  # their appends overlapped in time
    expected = [f"{p}-{i}" for p in ("one", "two") for i in range(1000)]
    assert sorted(ids(store)) == sorted(expected)  # all 2,000 rows, each once
    assert len(offline.parts(store)) < 30 and not list(store.glob(".*"))


def test_parts_are_named_in_append_order_and_read_in_it(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    for batch in range(5):
        append_offline(store, rows_frame(rows(batch * 3, 3)))  # type: ignore[arg-type]
    assert [p.kind for p in offline.parts(store)] == ["s", "a", "a", "a", "a", "a"]
    assert ids(store) == [f"app-{i}" for i in range(15)]
    assert [p.rows for p in offline.parts(store)] == [0, 3, 3, 3, 3, 3]
