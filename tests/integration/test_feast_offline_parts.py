"""Feast 0.67 on the offline store as a directory of Parquet parts: a store that still has the single
file of before is moved in on open, and point-in-time retrieval (dask's `read_parquet` over the
directory) sees the moved rows, the appended parts and the merged ones, each row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo import FeatureStoreSettings, offline
from feature_repo.names import ENTITY_KEY, EVENT_TIME
from services.features.adapters.feast_push import FeastPusher, rows_frame
from services.features.domain.rows import feature_row
from services.training.adapters.feast_source import FeastTrainingSource
from services.training.domain.dataset import LABEL, LABEL_TIME, entity_frame
from tests.integration.test_training_support import applications

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_an_upgraded_store_with_merged_parts_answers_point_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline, "FANOUT", 3)  # merges after a few single-row batches
    settings = FeatureStoreSettings(tmp_path / "feast")
    *apps, extra = applications(9, "parts", seed=5)
    rows = [feature_row(a.record[ENTITY_KEY], T0 + timedelta(hours=i), a.record) for i, a in enumerate(apps)]
    legacy = settings.legacy_offline_file  # the first three rows, in the single file of before
    legacy.parent.mkdir(parents=True)
    pq.write_table(offline.conform(pa.Table.from_pandas(rows_frame(rows[:3]), preserve_index=False)), legacy)

    pusher = FeastPusher(settings)
    pusher.open()  # moves the file in, then applies the definitions over the directory
    assert not legacy.exists() and settings.offline_path.is_dir()
    for row in rows[3:]:
        pusher.push([row])  # one part each; tiers of three merge
    corrected = dict(rows[0], housing="for free" if rows[0]["housing"] != "for free" else "rent")
    corrected[EVENT_TIME] = T0 + timedelta(days=1)  # entity 0 again, a day later
    pusher.push([corrected])
    kinds = [p.kind for p in offline.parts(settings.offline_path)]
    assert "u" not in kinds and "m" in kinds  # the moved file itself was merged

    ids = [r[ENTITY_KEY] for r in rows]
    label_times = [r[EVENT_TIME] + timedelta(minutes=30) for r in rows] + [T0 + timedelta(days=2)]
    labels = pd.DataFrame({ENTITY_KEY: [*ids, ids[0]], LABEL: [0, 1] * 4 + [1]})
    labels[LABEL_TIME] = pd.to_datetime(label_times, utc=True)
    retrieved = FeastTrainingSource(settings).historical(entity_frame(labels))

    assert len(retrieved) == 9 and set(retrieved[ENTITY_KEY]) == set(ids)
    by_time = retrieved.sort_values(LABEL_TIME).reset_index(drop=True)
    assert by_time["housing"].tolist() == [r["housing"] for r in rows] + [corrected["housing"]]
    expected_times = [r[EVENT_TIME] for r in rows] + [corrected[EVENT_TIME]]
    assert by_time[EVENT_TIME].tolist() == expected_times

    # An entity of the newest part only, and one with no row at all: with the parts read as two dask
    # partitions, Feast's sort failed on this ("Divisions calculation failed"); they are read as one.
    late = feature_row(extra.record[ENTITY_KEY], T0 + timedelta(days=3), extra.record)
    pusher.push([late])
    assert [p.kind for p in offline.parts(settings.offline_path)] == ["m", "a"]
    few = pd.DataFrame({ENTITY_KEY: [late[ENTITY_KEY], "never-pushed"], LABEL: [0, 1]})
    few[LABEL_TIME] = pd.to_datetime([late[EVENT_TIME] + timedelta(hours=1), T0], utc=True)
    found = FeastTrainingSource(settings).historical(entity_frame(few)).set_index(ENTITY_KEY)
    assert found.loc[late[ENTITY_KEY], "housing"] == late["housing"]
    assert pd.isna(found.loc["never-pushed", "housing"])
