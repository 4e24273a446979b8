"""HTTP request and response bodies. Unknown fields are refused (extra="forbid") with a 422."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, model_validator

EntityId = Annotated[StrictStr, Field(min_length=1, max_length=256)]
MAX_TEXT_VALUE = 256  # longer than any category a model is trained on: refused before it is scored
FeatureValue = StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=MAX_TEXT_VALUE)]
Features = Annotated[dict[Annotated[str, Field(max_length=256)], FeatureValue], Field(max_length=1000)]


def exactly_one_of(*fields: str, examples: list[Any] | None = None) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` saying what the `_exactly_one` validators enforce: exactly one of `fields`,
    given and not null. Without it the document allowed `{}` or two of them at once, and most
    schema-valid requests the fuzzer sent were refused (its "schema validation mismatch")."""

    def extra(schema: dict[str, Any]) -> None:
        for name in fields:
            field = schema["properties"][name]
            variants = [variant for variant in field.pop("anyOf", []) if variant != {"type": "null"}]
            field.update(variants[0] if len(variants) == 1 else {"anyOf": variants})
            field.pop("default", None)
        schema["oneOf"] = [{"required": [name]} for name in fields]
        if examples:
            schema["examples"] = examples

    return extra


class Instance(BaseModel):
    """One application to score: by entity key (features read online) or by its feature values."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra=exactly_one_of("entity_id", "features")
    )

    entity_id: EntityId | None = Field(None, description="Application id; features are read from Feast.")
    features: Features | None = Field(None, description="Feature values, exactly the model's inputs.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.entity_id is None) == (self.features is None):
            raise ValueError("give exactly one of entity_id or features")
        return self


class PredictRequest(BaseModel):
    """`{"entity_id": ...}`, `{"features": {...}}`, or a batch `{"instances": [...]}`."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra=exactly_one_of(
            "entity_id",
            "features",
            "instances",
            examples=[{"entity_id": "app-00001"}, {"instances": [{"entity_id": "app-00001"}]}],
        ),
    )

    entity_id: EntityId | None = None
    features: Features | None = None
    instances: list[Instance] | None = Field(
        None, min_length=1, description="A batch (at most SERVING_MAX_BATCH_SIZE instances)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [f for f in ("entity_id", "features", "instances") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of entity_id, features or instances")
        return self


class PredictionOut(BaseModel):
    prediction_id: str
    score: float = Field(description="P(bad), from the champion model.")
    probability: float | None = Field(
        default=None,
        description="Calibrated P(bad): the model card's calibration applied to the score (the decision "
        "stays the score's); null when the model carries no calibration.",
    )
    decision: Literal["approve", "decline"] = Field(description="decline when score >= threshold.")
    model_name: str
    model_version: str
    out_of_profile: list[str] = Field(
        default_factory=list,
        description="Features whose value lies outside the champion's training profile (flagged, "
        "scored anyway): values read online, or values sent under SERVING_OUT_OF_PROFILE=flag.",
    )


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    label: Literal["good", "bad"]
    entity_id: EntityId | None = Field(
        None, description="Entity the label is about; if given it must be the prediction's (else 409)."
    )


class LabelAccepted(BaseModel):
    event_id: str
    prediction_id: str
    entity_id: str


class ModelInfo(BaseModel):
    alias: str
    model_name: str
    model_version: str
    loaded_at: datetime
    load_seconds: float
    threshold: float
    features: list[str]
    scorer: str
    profiled: list[str] = Field(
        default_factory=list, description="Features with a training profile (empty: a legacy model)."
    )


class ModelStatus(BaseModel):
    champion: ModelInfo | None
    shadow: ModelInfo | None
