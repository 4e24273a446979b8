"""Feast definitions of the loan-application features (the German credit attributes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from feature_repo.names import (
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    EVENT_TIME,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FLOAT_FEATURES,
    NUMERIC_FEATURES,
    PUSH_SOURCE,
)

APPLICATION = Entity(name="application", join_keys=[ENTITY_KEY], value_type=ValueType.STRING)


def definitions(offline_path: Path) -> list[Any]:
    """Everything `FeatureStore.apply` needs; `offline_path` is the Parquet file behind the push source."""
    batch_source = FileSource(
        name="loan_applications_offline",
        path=str(offline_path),
        timestamp_field=EVENT_TIME,
    )
    push_source = PushSource(name=PUSH_SOURCE, batch_source=batch_source)
    schema = [Field(name=f, dtype=Float64 if f in FLOAT_FEATURES else Int64) for f in NUMERIC_FEATURES]
    schema += [Field(name=f, dtype=String) for f in CATEGORICAL_FEATURES]
    view = FeatureView(
        name=FEATURE_VIEW,
        entities=[APPLICATION],
        ttl=timedelta(days=3650),
        schema=schema,
        source=push_source,
        online=True,
        description="Attributes of a loan application, as ingested (PII-free).",
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[view])
    return [APPLICATION, push_source, view, service]
