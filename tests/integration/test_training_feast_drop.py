"""Feast 0.67's file offline store drops an entity row whose entity has feature rows but none valid at
the row's time (FACTS.md; feast-dev/feast#6787). Reproduced on a real store, and caught by the
training source + assemble: reported as dropped, never silently trained around."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from feature_repo import FeatureStoreSettings
from feature_repo.names import ENTITY_KEY
from services.features.adapters.feast_push import FeastPusher
from services.features.domain.rows import feature_row
from services.training.adapters.feast_source import FeastTrainingSource
from services.training.domain.dataset import LABEL, LABEL_TIME, assemble, entity_frame
from tests.integration.test_training_support import applications

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_rows_without_a_valid_feature_row_are_dropped_by_feast_and_detected(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path / "feast")
    pusher = FeastPusher(settings)
    pusher.open()
    apps = applications(6, "drop", seed=3)
    times = [T0 + timedelta(hours=i) for i in range(6)]
    pusher.push([feature_row(a.record[ENTITY_KEY], t, a.record) for a, t in zip(apps, times, strict=True)])
    ids = [a.record[ENTITY_KEY] for a in apps]
    label_times = [t + timedelta(minutes=30) for t in times]
    label_times[2] = times[2] - timedelta(minutes=30)  # labelled before its only feature row
    labels = pd.DataFrame({ENTITY_KEY: [*ids, "never-pushed"], LABEL: [0, 1, 0, 1, 0, 1, 0]})
    labels[LABEL_TIME] = pd.to_datetime([*label_times, T0 + timedelta(days=1)], utc=True)

    source = FeastTrainingSource(settings)
    retrieved = source.historical(entity_frame(labels))
    # Feast itself: 7 entity rows in, 6 out; the entity with no rows at all comes back with nulls.
    assert len(retrieved) == 6 and ids[2] not in set(retrieved[ENTITY_KEY])
    assert retrieved.loc[retrieved[ENTITY_KEY] == "never-pushed", "housing"].isna().all()

    data = assemble(labels, retrieved)
    assert data.dropped_by_store == [ids[2]] and data.without_features == ["never-pushed"]
    assert data.frame[ENTITY_KEY].tolist() == [i for i in ids if i != ids[2]]
    assert data.frame["applied_at"].tolist() == [t for i, t in enumerate(times) if i != 2]  # feature time
