"""Clean record -> feature row: typed columns, entity key and time from the envelope, bad values refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, EVENT_TIME, FEATURES, NUMERIC_FEATURES
from services.features.domain.rows import feature_row, summarise
from services.features.errors import NotAFeatureRow
from workbench.demo_data import ApplicationStream

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def record() -> dict[str, Any]:
    return dict(ApplicationStream(seed=3).take(1)[0].record)


def test_a_clean_record_becomes_a_typed_row_with_exactly_the_feature_columns() -> None:
    source = record()
    row = feature_row("app-1", T0, source)
    assert list(row) == [ENTITY_KEY, EVENT_TIME, *FEATURES]
    assert row[ENTITY_KEY] == "app-1" and row[EVENT_TIME] == T0
    assert isinstance(row["credit_amount"], float)
    for name in NUMERIC_FEATURES:
        if name != "credit_amount":
            assert type(row[name]) is int and row[name] == source[name]
    for name in CATEGORICAL_FEATURES:
        assert row[name] == source[name]
    assert "email" not in row and "notes" not in row  # PII columns never become features


def test_the_event_time_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    row = feature_row("app-1", datetime(2026, 1, 1, 13, tzinfo=paris), record())
    assert row[EVENT_TIME] == T0 and row[EVENT_TIME].tzinfo == UTC


def test_an_integral_float_is_accepted_for_an_integer_feature() -> None:
    assert feature_row("a", T0, record() | {"age_in_years": 30.0})["age_in_years"] == 30


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("age_in_years", None, "missing"),
        ("age_in_years", "thirty", "wrong_type"),
        ("age_in_years", True, "wrong_type"),
        ("age_in_years", 30.5, "wrong_type"),
        ("credit_amount", "1000", "wrong_type"),
        ("housing", 3, "wrong_type"),
        ("housing", None, "missing"),
    ],
)
def test_missing_or_mistyped_features_are_refused_with_the_field(field: str, value: Any, code: str) -> None:
    bad = record()
    if value is None:
        del bad[field]
    else:
        bad[field] = value
    with pytest.raises(NotAFeatureRow) as caught:
        feature_row("a", T0, bad)
    assert [(e.field, e.code) for e in caught.value.errors] == [(f"payload.record.{field}", code)]
    assert str(value) not in caught.value.errors[0].message or value is None  # values are not echoed


def test_summary_of_a_batch() -> None:
    rows = [feature_row(f"a{i % 2}", T0 + timedelta(minutes=i), record()) for i in range(3)]
    summary = summarise(rows)
    assert summary.entity_ids == ["a0", "a1"] and summary.rows == 3
    assert (summary.event_time_min, summary.event_time_max) == (T0, T0 + timedelta(minutes=2))
    with pytest.raises(ValueError):
        summarise([])
