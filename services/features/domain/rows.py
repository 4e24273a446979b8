"""Clean record -> feature row: the feature columns of `feature_repo`, typed as the feature view declares.

Pure: no Kafka, no Feast. A row is the entity key, the event time (UTC) and one value per feature;
a missing column, a value of the wrong type, or a value the stores cannot hold (an event time outside
what a nanosecond timestamp can represent, an integer past int64) raises `NotAFeatureRow`: that record
alone is dead-lettered, with the field that failed.

>>> from datetime import datetime, UTC
>>> record = {name: 1 for name in NUMERIC_FEATURES} | {name: "x" for name in CATEGORICAL_FEATURES}
>>> row = feature_row("app-1", datetime(2026, 1, 1, tzinfo=UTC), record)
>>> row["application_id"], row["credit_amount"], row["housing"]
('app-1', 1.0, 'x')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.common import FieldError, Record
from feature_repo.names import (
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    EVENT_TIME,
    FLOAT_FEATURES,
    NUMERIC_FEATURES,
)
from services.features.errors import NotAFeatureRow

FeatureRow = dict[str, Any]

# What Feast's frames (pandas, nanosecond timestamps: 1677-09-21 to 2262-04-11) and the offline
# store's Parquet parts (int64) can hold, with a margin. Plausibility (no applications from year 1) is
# ingest's to judge; this is about what the stores can represent at all.
EARLIEST_EVENT_TIME = datetime(1700, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2200, 1, 1, tzinfo=UTC)
INT64 = (-(2**63), 2**63 - 1)


def feature_row(entity_id: str, event_time: datetime, record: Record) -> FeatureRow:
    """One typed row; the entity key and the event time come from the envelope, not the record."""
    row: FeatureRow = {ENTITY_KEY: entity_id, EVENT_TIME: event_time.astimezone(UTC)}
    errors: list[FieldError] = []
    if not EARLIEST_EVENT_TIME <= row[EVENT_TIME] < LATEST_EVENT_TIME:
        errors.append(
            FieldError(
                field="payload.event_time",
                code="out_of_range",
                message=f"expected an event time from {EARLIEST_EVENT_TIME.year} to {LATEST_EVENT_TIME.year}",
            )
        )
    for name in NUMERIC_FEATURES:
        row[name] = _number(name, record.get(name), float if name in FLOAT_FEATURES else int, errors)
    for name in CATEGORICAL_FEATURES:
        value = record.get(name)
        if not isinstance(value, str):
            errors.append(_error(name, value, "a string"))
        row[name] = value
    if errors:
        raise NotAFeatureRow(f"{len(errors)} feature column(s) missing or mistyped", errors)
    return row


def _number(name: str, value: Any, kind: type, errors: list[FieldError]) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(_error(name, value, "a number"))
        return None
    if kind is int and value != int(value):
        errors.append(_error(name, value, "an integer"))
        return None
    if kind is int and not INT64[0] <= int(value) <= INT64[1]:
        errors.append(FieldError(field=f"payload.record.{name}", code="out_of_range", message="past int64"))
        return None
    return kind(value)


def _error(name: str, value: Any, expected: str) -> FieldError:
    code = "missing" if value is None else "wrong_type"
    return FieldError(field=f"payload.record.{name}", code=code, message=f"expected {expected}")


@dataclass(frozen=True)
class BatchSummary:
    """What a pushed batch covered, for `FeaturesUpdated`."""

    entity_ids: list[str]
    rows: int
    event_time_min: datetime
    event_time_max: datetime


def summarise(rows: list[FeatureRow]) -> BatchSummary:
    if not rows:
        raise ValueError("an empty batch has no summary")
    times = [row[EVENT_TIME] for row in rows]
    entity_ids = list(dict.fromkeys(str(row[ENTITY_KEY]) for row in rows))
    return BatchSummary(entity_ids, len(rows), min(times), max(times))
