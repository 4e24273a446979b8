"""The offline store's parts: tiered merges that keep every row once and bound the part count, a merge
that waits for readers (and never shows them a row twice), a merge that died finished on open, and the
single file of before moved in as the first part."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo import offline
from feature_repo.store import FeatureStoreSettings, offline_lock
from services.features.adapters.feast_push import append_offline, rows_frame
from tests.unit.test_features_offline_append import ids, rows


def add(store: Path, start: int, n: int) -> None:
    append_offline(store, rows_frame(rows(start, n)))  # type: ignore[arg-type]


def test_merges_keep_every_row_once_and_bound_the_part_count(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    offline.ensure(store)
    sizes = [1 + (i * 37) % 120 for i in range(300)]  # 1 to 120 rows: tiers 0, 1 and 2 mixed
    start, counts = 0, []
    for n in sizes:
        add(store, start, n)
        start += n
        counts.append(len(offline.parts(store)))
    listed = offline.parts(store)
    tiers = {p.tier for p in listed}
    assert max(counts) <= (offline.FANOUT - 1) * (max(tiers) + 1) + 1  # at most 7 a tier, then merged
    assert all(sum(p.tier == t for p in listed) < offline.FANOUT for t in tiers)
    assert max(p.rows for p in listed) > 8**3  # merged parts climbed tiers
    assert sorted(ids(store)) == sorted(f"app-{i}" for i in range(start))  # every row, once


def test_past_max_parts_the_smallest_parts_merge_whatever_their_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline, "FANOUT", 1000)  # no tier ever fills
    monkeypatch.setattr(offline, "MAX_PARTS", 10)
    store = tmp_path / "offline"
    offline.ensure(store)
    counts = []
    for batch in range(40):
        add(store, batch * 5, 5)
        counts.append(len(offline.parts(store)))
    assert max(counts) <= 10 and min(counts[12:]) >= 5  # bounded, and not merged into one each time
    assert sorted(ids(store)) == sorted(f"app-{i}" for i in range(200))


def full_tier(store: Path) -> None:
    """Seven tier-1 parts in place: the next 10-row append fills the tier."""
    offline.ensure(store)
    for batch in range(offline.FANOUT - 1):
        add(store, batch * 10, 10)
    assert len(offline.parts(store)) == offline.FANOUT  # the seed and seven parts


def test_a_merge_waits_for_a_reader_holding_the_shared_lock_who_sees_every_row_once(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    full_tier(store)
    add(store, 70, 10)
    assert len(offline.parts(store)) == 2  # the tier merged: the seed and one part of 80 rows
    for batch in range(8, 15):
        add(store, batch * 10, 10)
    listed, release, seen = threading.Event(), threading.Event(), []

    def read_part_by_part() -> None:  # as dask does: list the parts, then open each, later
        with offline_lock(store, exclusive=False):
            paths = [p.path for p in offline.parts(store)]
            listed.set()
            release.wait(30)  # until the test has seen the merges held off
            for path in paths:
                seen.extend(pq.read_table(path).column("application_id").to_pylist())

    reader = threading.Thread(target=read_part_by_part)
    reader.start()
    listed.wait(5)
    add(store, 150, 10)  # fills tier 1 again: its merge is skipped (a reader holds the lock)...
    assert len(offline.parts(store)) == 10 and reader.is_alive()
    merged = threading.Thread(target=offline.merge, args=(store,))
    merged.start()  # ...and one that waits, waits
    time.sleep(0.2)
    assert merged.is_alive() and len(offline.parts(store)) == 10
    release.set()
    reader.join()
    merged.join(10)
    assert sorted(seen) == sorted(f"app-{i}" for i in range(150))  # the listing's rows, each once
    assert len(offline.parts(store)) == 3 and sorted(ids(store)) == sorted(f"app-{i}" for i in range(160))


def test_a_merge_that_died_after_its_rename_is_finished_on_open(tmp_path: Path) -> None:
    store = tmp_path / "offline"
    full_tier(store)
    inputs = [p for p in offline.parts(store) if p.kind == "a"]
    tables = [pq.read_table(p.path) for p in inputs]
    offline._merge(store, inputs)  # then its inputs put back: as if it died before deleting them
    for part, table in zip(inputs, tables, strict=True):
        pq.write_table(table, part.path)
    (store / ".part-00000000000000000009-a1x1-3r.parquet.tmp").write_bytes(b"half written")
    assert len(ids(store)) == 140  # every row twice
    offline.ensure(store)
    assert sorted(ids(store)) == sorted(f"app-{i}" for i in range(70))
    assert [p.kind for p in offline.parts(store)] == ["s", "m"] and not list(store.glob(".*"))


def old_append(path: Path, frame: pd.DataFrame) -> None:
    """The append of before the directory: the whole file read, concatenated, rewritten."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    previous = pq.read_table(path)
    pq.write_table(pa.concat_tables([table.cast(previous.schema), previous]), path)


def test_the_single_file_of_before_is_moved_in_as_the_first_part_once(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path / "feast")
    legacy = settings.legacy_offline_file
    legacy.parent.mkdir(parents=True)
    pq.write_table(offline.offline_schema().empty_table(), legacy)
    for batch in range(3):
        old_append(legacy, rows_frame(rows(batch * 10, 10)))  # type: ignore[arg-type]
    legacy.with_name(f".{legacy.name}.lock").touch()
    offline.ensure(settings.offline_path, legacy)
    assert not legacy.exists() and not legacy.with_name(f".{legacy.name}.lock").exists()
    assert [(p.kind, p.rows) for p in offline.parts(settings.offline_path)] == [("u", 30)]
    offline.ensure(settings.offline_path, legacy)  # once: a second open changes nothing
    add(settings.offline_path, 30, 5)
    assert sorted(ids(settings.offline_path)) == sorted(f"app-{i}" for i in range(35))


def test_a_file_of_before_with_another_schema_is_cast_when_moved_in(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path / "feast")
    legacy = settings.legacy_offline_file
    legacy.parent.mkdir(parents=True)
    frame = rows_frame(rows(0, 6))  # type: ignore[arg-type]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), legacy)  # ns times, pandas metadata
    assert pq.read_schema(legacy).field("applied_at").type == pa.timestamp("ns", tz="UTC")
    offline.ensure(settings.offline_path, legacy)
    (part,) = offline.parts(settings.offline_path)
    assert pq.read_schema(part.path).remove_metadata() == offline.offline_schema()
    assert ids(settings.offline_path) == [f"app-{i}" for i in range(6)]
