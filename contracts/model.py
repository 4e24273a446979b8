"""The model card: what a registered model carries, written by training and read by serving and explain.

Training logs the card inside the model artifact itself (`log_model(metadata={"model_card": ...})`,
so it lives in the MLmodel file and travels with the weights, immutable). The gate verdict is decided
after registration, so it is a version tag (`gate`) that `read_model_card` lays over the card.

Models registered before the card existed carry only version tags (`features`, `decision_threshold`,
`positive_class`, `dataset_sha256`, `window_start`, `window_end`) and an MLflow signature:
`read_model_card` builds a card from those, with an empty training profile. Anything it cannot read is
a `ModelCardError` naming the version and the reason.

Compatibility: `docs/model/ModelCard.v{CARD_VERSION}.json` pins the schema
(tests/unit/test_contracts_model_card.py). A change that breaks a reader must bump `CARD_VERSION`.
Write the pinned schema with `python -m contracts.model [DIR]`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass

from contracts.common import ContractModel, Name, Scalar, Sha256Hex

CARD_VERSION = 1
METADATA_KEY = "model_card"
MAX_CATEGORIES = 10_000  # beyond this a feature is treated as free text: no category profile kept
Kind = Literal["int", "float", "str"]
Gate = Literal["pending", "passed", "rejected"]

# MLflow signature type names (ColSpec.type.name) -> the card's kinds.
SIGNATURE_KINDS: dict[str, Kind] = {
    "long": "int",
    "integer": "int",
    "double": "float",
    "float": "float",
    "string": "str",
}


class ModelCardError(ValueError):
    """A registered model whose card (or legacy tags) cannot be read; the message says why."""


@dataclass(frozen=True)
class Column:
    """One model input: its name and its type. Positional: `Column("age", "int")`."""

    name: Name
    kind: Kind


class FeatureProfile(ContractModel):
    """What training saw of one feature: the numeric range, or the categories."""

    minimum: float | None = Field(default=None, description="Smallest finite value seen (numeric).")
    maximum: float | None = Field(default=None, description="Largest finite value seen (numeric).")
    categories: list[str] | None = Field(
        default=None, description="Every category seen (str); None when not recorded (too many)."
    )
    rows: int = Field(ge=0, description="Rows with a usable value.")

    @classmethod
    def observe(cls, kind: Kind, values: Iterable[Scalar]) -> FeatureProfile:
        """The profile of plain values (nulls and non-finite numbers skipped).

        >>> FeatureProfile.observe("int", [3, None, 1, 7]).model_dump()
        {'minimum': 1.0, 'maximum': 7.0, 'categories': None, 'rows': 3}
        >>> FeatureProfile.observe("str", ["b", "a", "b"]).categories
        ['a', 'b']
        """
        present = [v for v in values if v is not None]
        if kind == "str":
            seen = sorted({str(v) for v in present})
            return cls(categories=seen if len(seen) <= MAX_CATEGORIES else None, rows=len(present))
        numbers = [float(v) for v in present if isinstance(v, int | float) and math.isfinite(float(v))]
        if not numbers:
            return cls(rows=0)
        return cls(minimum=min(numbers), maximum=max(numbers), rows=len(numbers))

    def violation(self, value: Scalar) -> str | None:
        """Why `value` lies outside this profile, or None when it lies inside (or nothing is known).

        >>> FeatureProfile(minimum=4, maximum=72, rows=9).violation(1e30)
        'above the largest value seen in training'
        >>> FeatureProfile(categories=["a"], rows=1).violation("z")
        'a category not seen in training'
        """
        if self.categories is not None and isinstance(value, str):
            return None if value in self.categories else "a category not seen in training"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return "not a finite number"
        if self.minimum is not None and value < self.minimum:
            return "below the smallest value seen in training"
        if self.maximum is not None and value > self.maximum:
            return "above the largest value seen in training"
        return None


class Calibration(ContractModel):
    """Platt scaling of the model's score: P(positive) = sigmoid(slope * logit(score) + intercept).

    Fitted by training on out-of-fold scores of the training rows, measured on the holdout (expected
    calibration error over 10 equal-width bins, Brier score; before and after). The served score and
    the decisions stay the raw model's: the calibrated probability is reported beside them.
    """

    method: Literal["platt"] = Field(default="platt", description="How the map was fitted.")
    slope: float = Field(description="Weight of logit(score).")
    intercept: float = Field(description="Offset added to slope * logit(score).")
    fitted_rows: int = Field(ge=0, description="Training rows whose out-of-fold scores fitted the map.")
    holdout_ece_before: float = Field(ge=0, le=1, description="Holdout ECE of the raw score (10 bins).")
    holdout_ece_after: float = Field(ge=0, le=1, description="Holdout ECE of the calibrated probability.")
    holdout_brier_before: float = Field(ge=0, le=1, description="Holdout Brier score of the raw score.")
    holdout_brier_after: float = Field(ge=0, le=1, description="Holdout Brier score, calibrated.")

    def apply(self, score: float) -> float:
        """The calibrated probability of a score (scores are clipped to [1e-12, 1 - 1e-12] first).

        >>> Calibration(slope=1, intercept=0, fitted_rows=0, holdout_ece_before=0, holdout_ece_after=0,
        ...             holdout_brier_before=0, holdout_brier_after=0).apply(0.25)
        0.25
        """
        return platt(score, self.slope, self.intercept)


PLATT_EPSILON = 1e-12  # scores are clipped to [eps, 1 - eps] before the logit: 0 and 1 stay finite


def platt(score: float, slope: float, intercept: float) -> float:
    """sigmoid(slope * logit(score) + intercept), numerically safe for scores of 0 and 1 (NaN stays NaN).

    >>> platt(0.0, 2.0, 0.0) < 1e-20, platt(1.0, 2.0, 0.0) == 1.0, round(platt(0.5, 3.0, 0.0), 12)
    (True, True, 0.5)
    """
    p = min(max(score, PLATT_EPSILON), 1.0 - PLATT_EPSILON)  # NaN passes through both
    z = slope * math.log(p / (1.0 - p)) + intercept
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ModelCard(ContractModel):
    """Everything a registered model promises its readers (serving, explain, training's own gate)."""

    card_version: Literal[1] = Field(default=1, description="Version of this contract.")
    features: list[Column] = Field(min_length=1, description="Model inputs in input order, typed.")
    positive_class: Name = Field(default="bad", description="Class whose probability the model scores.")
    decision_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Score at or above which the positive class is decided."
    )
    window_start: datetime | None = Field(default=None, description="First event time trained on.")
    window_end: datetime | None = Field(default=None, description="Last event time trained on.")
    dataset_sha256: Sha256Hex | None = Field(default=None, description="Hash of the exact training set.")
    gate: Gate = Field(default="pending", description="The promotion gate's verdict (a version tag).")
    profile: dict[str, FeatureProfile] = Field(
        default_factory=dict, description="Per feature: what training saw. Empty for legacy models."
    )
    calibration: Calibration | None = Field(
        default=None,
        description="Map from the score to a calibrated probability; None when not fitted (older cards, "
        "too few rows, or a fold with one class).",
    )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.features)

    def metadata(self) -> dict[str, Any]:
        """The `metadata=` argument of `mlflow.<flavor>.log_model`."""
        return {METADATA_KEY: self.model_dump(mode="json")}

    @classmethod
    def profiled(
        cls, features: Sequence[Column], rows: Mapping[str, Iterable[Scalar]], **fields: Any
    ) -> ModelCard:
        """A card whose profile is observed from `rows` (feature name -> training values)."""
        profile = {c.name: FeatureProfile.observe(c.kind, rows[c.name]) for c in features if c.name in rows}
        return cls(features=list(features), profile=profile, **fields)


SignatureInputs = Sequence[tuple[str | None, str]]
"""(name, MLflow type name) per signature input, e.g. [("age_in_years", "long")]."""


def read_model_card(
    version: str,
    *,
    metadata: Mapping[str, Any] | None,
    tags: Mapping[str, str],
    signature_inputs: SignatureInputs | None,
) -> ModelCard:
    """The card of one registered version, from its MLmodel metadata, or from legacy tags."""
    stored = (metadata or {}).get(METADATA_KEY)
    card = _legacy(version, tags, signature_inputs) if stored is None else _stored(version, stored)
    if stored is not None and signature_inputs is not None:
        _matches_signature(version, card, signature_inputs)
    gate = tags.get("gate")
    if gate in ("passed", "rejected"):
        card = card.model_copy(update={"gate": gate})
    return card


def read_registered_card(version: str, model_info: Any, tags: Mapping[str, str]) -> ModelCard:
    """The card of a version from MLflow's `get_model_info(uri)` (duck-typed: no MLflow import here)."""
    return read_model_card(
        version,
        metadata=getattr(model_info, "metadata", None),
        tags=tags,
        signature_inputs=signature_inputs(getattr(model_info, "signature", None)),
    )


def signature_inputs(signature: Any) -> list[tuple[str | None, str]] | None:
    """(name, type name) per input of an MLflow `ModelSignature`, or None without one."""
    if signature is None or signature.inputs is None:
        return None
    return [(spec.name, getattr(spec.type, "name", str(spec.type))) for spec in signature.inputs.inputs]


def _stored(version: str, stored: Any) -> ModelCard:
    found = stored.get("card_version") if isinstance(stored, Mapping) else None
    if isinstance(found, int) and found > CARD_VERSION:
        raise ModelCardError(
            f"version {version}: model card v{found} is newer than this reader (v{CARD_VERSION}); upgrade it"
        )
    try:
        return ModelCard.model_validate(stored)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors())
        raise ModelCardError(f"version {version}: invalid model card: {where}") from None


def _legacy(version: str, tags: Mapping[str, str], signature_inputs: SignatureInputs | None) -> ModelCard:
    """A card for a model registered before cards existed: signature + tags, no profile."""
    kinds = _signature_kinds(version, signature_inputs)
    declared = [n for n in tags.get("features", "").split(",") if n]
    names = declared or list(kinds)
    missing = [n for n in names if n not in kinds]
    if missing:
        raise ModelCardError(f"version {version}: features tag names inputs not in the signature: {missing}")
    if declared and set(declared) != set(kinds):
        raise ModelCardError(f"version {version}: the features tag does not match the signature inputs")
    try:
        threshold = float(tags.get("decision_threshold", "0.5"))
    except ValueError:
        raise ModelCardError(f"version {version}: decision_threshold is not a number") from None
    fields = {
        "features": [Column(n, kinds[n]) for n in names],
        "positive_class": tags.get("positive_class", "bad"),
        "decision_threshold": threshold,
        "window_start": tags.get("window_start") or None,
        "window_end": tags.get("window_end") or None,
        "dataset_sha256": tags.get("dataset_sha256") or None,
    }
    try:
        return ModelCard.model_validate(fields)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())
        raise ModelCardError(f"version {version}: invalid legacy tags: {where}") from None


def _signature_kinds(version: str, signature_inputs: SignatureInputs | None) -> dict[str, Kind]:
    if not signature_inputs:
        raise ModelCardError(f"version {version}: logged without an input signature")
    kinds: dict[str, Kind] = {}
    for name, type_name in signature_inputs:
        kind = SIGNATURE_KINDS.get(type_name)
        if name is None or kind is None:
            raise ModelCardError(f"version {version}: input {name!r} has unsupported type {type_name}")
        kinds[name] = kind
    return kinds


def _matches_signature(version: str, card: ModelCard, signature_inputs: SignatureInputs) -> None:
    kinds = _signature_kinds(version, signature_inputs)
    declared = {c.name: c.kind for c in card.features}
    if declared != kinds:
        raise ModelCardError(f"version {version}: the model card's features do not match the signature")


def schema_file(directory: Path) -> Path:
    return directory / f"ModelCard.v{CARD_VERSION}.json"


def main(argv: Sequence[str]) -> int:
    """Write the pinned schema: python -m contracts.model [DIR] (default docs/model)."""
    directory = Path(argv[0]) if argv else Path("docs/model")
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(ModelCard.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    schema_file(directory).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
