"""Serving's pure logic: feature checks, the decision rule, the compiled scorer, the model slot."""

from __future__ import annotations

import math

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from services.serving.domain.features import check_features, missing_features
from services.serving.domain.model import Column, ModelSlot, decide
from services.serving.domain.scoring import LinearScorer, SklearnScorer, compile_linear, verified
from services.serving.errors import InvalidFeatures
from tests.unit.test_serving_support import SMALL_FEATURES, fitted, loaded
from workbench.serving_devdata import germancredit

COLUMNS = (Column("age", "int"), Column("amount", "float"), Column("job", "str"))


def test_check_features_returns_the_model_inputs_in_order() -> None:
    row = check_features(COLUMNS, {"job": "clerk", "amount": 3, "age": 30})
    assert list(row) == ["age", "amount", "job"]
    assert row == {"age": 30, "amount": 3.0, "job": "clerk"} and isinstance(row["amount"], float)


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"amount": 1.0, "job": "x"}, "features.age", "missing"),
        ({"age": "30", "amount": 1.0, "job": "x"}, "features.age", "wrong_type"),
        ({"age": 30.5, "amount": 1.0, "job": "x"}, "features.age", "wrong_type"),
        ({"age": True, "amount": 1.0, "job": "x"}, "features.age", "wrong_type"),
        ({"age": 30, "amount": None, "job": "x"}, "features.amount", "wrong_type"),
        ({"age": 30, "amount": math.nan, "job": "x"}, "features.amount", "wrong_type"),
        ({"age": 30, "amount": 1.0, "job": 7}, "features.job", "wrong_type"),
        ({"age": 30, "amount": 1.0, "job": "x", "salary": 1}, "features.salary", "unknown"),
    ],
)
def test_check_features_names_each_problem(values: dict, field: str, code: str) -> None:
    with pytest.raises(InvalidFeatures) as caught:
        check_features(COLUMNS, values)
    assert {"field": field, "code": code} == {k: caught.value.errors[0][k] for k in ("field", "code")}
    assert caught.value.status == 422


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidFeatures) as caught:
        check_features(COLUMNS, {"age": "x", "extra": 1})
    assert {e["code"] for e in caught.value.errors} == {"wrong_type", "missing", "unknown"}


def test_values_read_online_are_checked_leniently() -> None:
    row = check_features(COLUMNS, {"age": 30.0, "amount": 1.0, "job": "x", "other": 1}, strict=False)
    assert row == {"age": 30, "amount": 1.0, "job": "x"}
    assert missing_features(COLUMNS, {"age": 1, "amount": None}) == ["amount", "job"]


def test_decision_declines_at_or_above_the_threshold() -> None:
    assert decide(0.5, 0.5) == "decline" and decide(0.49999, 0.5) == "approve"
    assert loaded(threshold=0.2).decide(0.3) == "decline"


@pytest.mark.parametrize("features", [None, SMALL_FEATURES])
def test_compiled_scorer_equals_the_pipeline_on_every_row(features: tuple[str, ...] | None) -> None:
    pipeline, columns = fitted(features)
    compiled = compile_linear(pipeline, columns)
    assert compiled is not None
    data = germancredit()[[c.name for c in columns]].to_dict("records")
    expected = SklearnScorer(pipeline, columns).score(data)
    assert max(abs(a - b) for a, b in zip(compiled.score(data), expected, strict=True)) < 1e-12
    assert verified(compiled, SklearnScorer(pipeline, columns), columns)


def test_unknown_categories_score_as_the_pipeline_does() -> None:
    pipeline, columns = fitted(SMALL_FEATURES)
    compiled = compile_linear(pipeline, columns)
    assert compiled is not None
    row = {
        "duration_in_month": 12,
        "credit_amount": 2000.0,
        "age_in_years": 40,
        "purpose": "??",
        "housing": "own",
    }
    assert compiled.score([row]) == pytest.approx(SklearnScorer(pipeline, columns).score([row]), abs=1e-12)


def test_unsupported_pipelines_are_not_compiled() -> None:
    pipeline, columns = fitted(SMALL_FEATURES)
    forest = Pipeline(
        [("prep", pipeline[0]), ("clf", RandomForestClassifier(n_estimators=3, random_state=0))]
    )
    frame = germancredit()
    forest.fit(frame[list(SMALL_FEATURES)], frame["creditability"] == "bad")
    assert compile_linear(forest, columns) is None
    assert compile_linear(object(), columns) is None


def test_a_wrong_compilation_fails_verification() -> None:
    pipeline, columns = fitted(SMALL_FEATURES)
    compiled = compile_linear(pipeline, columns)
    assert compiled is not None
    tampered = LinearScorer(compiled.intercept + 0.01, compiled.numeric, compiled.categorical)
    assert not verified(tampered, SklearnScorer(pipeline, columns), columns)


def test_the_slot_swaps_whole_models() -> None:
    slot = ModelSlot()
    first, second = loaded("1"), loaded("2", SMALL_FEATURES)
    assert slot.swap(first) is None and slot.champion is first
    held = slot.champion  # what a request in flight holds
    assert slot.swap(second) is first and slot.champion is second
    assert held.version == "1" and held.feature_names == first.feature_names
    assert slot.swap(loaded("3"), shadow=True) is None and slot.challenger is not None
    assert slot.champion is second
