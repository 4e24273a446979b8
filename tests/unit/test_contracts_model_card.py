"""The model card contract: its pinned schema guards every reader; reading new and legacy models."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.compat import breaking_changes
from contracts.model import (
    CARD_VERSION,
    Calibration,
    Column,
    FeatureProfile,
    ModelCard,
    ModelCardError,
    platt,
    read_model_card,
    schema_file,
)

PINNED = schema_file(Path(__file__).resolve().parents[2] / "docs" / "model")
SIGNATURE = [("duration", "long"), ("amount", "double"), ("purpose", "string")]
COLUMNS = [Column("duration", "int"), Column("amount", "float"), Column("purpose", "str")]
SHA = "ab" * 32


def card(**fields: Any) -> ModelCard:
    rows = {"duration": [6, 72, 12], "amount": [250.0, 18424.0], "purpose": ["car", "tv", "car"]}
    return ModelCard.profiled(COLUMNS, rows, decision_threshold=0.4, dataset_sha256=SHA, **fields)


def test_the_pinned_schema_is_the_current_one() -> None:
    """An incompatible change must bump CARD_VERSION (and pin a new file): `python -m contracts.model`."""
    assert PINNED.exists(), "run `python -m contracts.model`"
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert breaking_changes(pinned, ModelCard.model_json_schema()) == []
    assert pinned["properties"]["card_version"]["const"] == CARD_VERSION


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda s: s["properties"].pop("decision_threshold"), "decision_threshold: property removed"),
        (lambda s: s["$defs"]["FeatureProfile"]["properties"].pop("categories"), "categories"),
        (lambda s: s["required"].append("training_rows"), "training_rows"),
    ],
)
def test_an_incompatible_change_fails_the_pin(edit: Any, needle: str) -> None:
    changed = copy.deepcopy(ModelCard.model_json_schema())
    edit(changed)
    if needle == "training_rows":
        changed["properties"]["training_rows"] = {"type": "integer"}
    problems = breaking_changes(ModelCard.model_json_schema(), changed)
    assert any(needle in p for p in problems), problems


def test_a_card_round_trips_through_mlflow_metadata_with_the_gate_tag_laid_over() -> None:
    written = card()
    metadata = json.loads(json.dumps(written.metadata()))  # what the MLmodel file gives back
    read = read_model_card("3", metadata=metadata, tags={"gate": "passed"}, signature_inputs=SIGNATURE)
    assert read.gate == "passed" and written.gate == "pending"
    assert read.model_copy(update={"gate": "pending"}) == written
    assert read.profile["duration"].minimum == 6 and read.profile["duration"].maximum == 72
    assert read.profile["purpose"].categories == ["car", "tv"]


def test_a_legacy_model_is_read_from_its_tags_and_signature() -> None:
    tags = {"features": "purpose,duration,amount", "decision_threshold": "0.3", "dataset_sha256": SHA}
    read = read_model_card("1", metadata={}, tags=tags, signature_inputs=SIGNATURE)
    assert read.feature_names == ("purpose", "duration", "amount")
    assert read.decision_threshold == 0.3 and read.positive_class == "bad" and read.profile == {}


@pytest.mark.parametrize(
    ("metadata", "tags", "signature", "needle"),
    [
        (None, {}, None, "without an input signature"),
        (None, {"decision_threshold": "high"}, SIGNATURE, "not a number"),
        (None, {"decision_threshold": "1.5"}, SIGNATURE, "decision_threshold"),
        (None, {"features": "duration,age"}, SIGNATURE, "not in the signature"),
        (None, {"features": "duration"}, SIGNATURE, "does not match"),
        (None, {}, [("x", "binary")], "unsupported type"),
        ({"model_card": {"card_version": 2}}, {}, SIGNATURE, "newer than this reader"),
        ({"model_card": {"features": []}}, {}, SIGNATURE, "invalid model card"),
        ({"model_card": "not a card"}, {}, SIGNATURE, "invalid model card"),
    ],
)
def test_an_unreadable_model_is_a_clear_error(
    metadata: Any, tags: dict[str, str], signature: Any, needle: str
) -> None:
    with pytest.raises(ModelCardError, match=needle) as raised:
        read_model_card("7", metadata=metadata, tags=tags, signature_inputs=signature)
    assert "version 7" in str(raised.value)


def test_a_card_that_disagrees_with_the_signature_is_refused() -> None:
    wrong = [("duration", "double"), ("amount", "double"), ("purpose", "string")]
    with pytest.raises(ModelCardError, match="do not match the signature"):
        read_model_card("2", metadata=card().metadata(), tags={}, signature_inputs=wrong)


@pytest.mark.parametrize(
    ("value", "inside"),
    [(6, True), (72, True), (5, False), (73, False), (-1e18, False), (1e30, False), (float("nan"), False)],
)
def test_the_numeric_profile_bounds_what_training_saw(value: float, inside: bool) -> None:
    assert (card().profile["duration"].violation(value) is None) is inside


def test_the_category_profile_knows_every_category_seen() -> None:
    purpose = card().profile["purpose"]
    assert purpose.violation("car") is None and purpose.violation("tv") is None
    assert purpose.violation("x" * 100_000) == "a category not seen in training"


def test_a_profile_skips_nulls_and_non_finite_values() -> None:
    profile = FeatureProfile.observe("float", [None, float("inf"), 2.5, float("nan"), -1.0])
    assert (profile.minimum, profile.maximum, profile.rows) == (-1.0, 2.5, 2)
    assert FeatureProfile.observe("float", [None]).violation(1e30) is None  # nothing known, nothing refused


CALIBRATION = Calibration(
    slope=1.8,
    intercept=-0.3,
    fitted_rows=640,
    holdout_ece_before=0.12,
    holdout_ece_after=0.03,
    holdout_brier_before=0.21,
    holdout_brier_after=0.17,
)


def test_a_card_with_its_calibration_round_trips() -> None:
    written = card(calibration=CALIBRATION)
    metadata = json.loads(json.dumps(written.metadata()))
    read = read_model_card("4", metadata=metadata, tags={}, signature_inputs=SIGNATURE)
    assert read == written and read.calibration == CALIBRATION
    assert read.calibration is not None and read.calibration.apply(0.3) == CALIBRATION.apply(0.3)


def test_a_card_written_before_calibration_still_reads_without_one() -> None:
    stored = card().metadata()
    del stored["model_card"]["calibration"]  # what cards logged before the field look like
    read = read_model_card("2", metadata=stored, tags={}, signature_inputs=SIGNATURE)
    assert read.calibration is None and read == card()


def test_platt_is_the_logistic_of_the_scaled_logit_and_safe_at_the_ends() -> None:
    import math

    for score in (0.01, 0.2, 0.5, 0.77, 0.999):
        z = 1.8 * math.log(score / (1 - score)) - 0.3
        assert CALIBRATION.apply(score) == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)
    assert 0.0 <= CALIBRATION.apply(0.0) < 1e-15 and 1 - 1e-15 < CALIBRATION.apply(1.0) <= 1.0
    assert platt(0.0, 1e6, 0.0) == 0.0 and platt(1.0, 1e6, 0.0) == 1.0  # no overflow
    assert platt(0.3, 1.0, 0.0) == pytest.approx(0.3) and math.isnan(platt(float("nan"), 1.0, 0.0))
    increasing = [CALIBRATION.apply(s / 100) for s in range(101)]
    assert increasing == sorted(increasing)
