"""Events about data records: cleaned, rejected, turned into features, labelled."""

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from contracts.common import ContractModel, KafkaCoordinates, Name, Record, Rejection, Sha256Hex
from contracts.envelope import Event
from contracts.topics import FEATURES_UPDATED, LABELS_OBSERVED, RECORDS_CLEAN, RECORDS_REJECTED


class RecordCleanedPayload(ContractModel):
    """Body of `RecordCleaned`."""

    dataset: Name = Field(description="Dataset the record belongs to; selects its declared schema.")
    entity_id: Name = Field(description="Id of the entity the record describes (partition key).")
    event_time: AwareDatetime = Field(description="When the fact in the record happened.")
    record: Record = Field(description="The validated record, with PII scrubbed.")
    source: KafkaCoordinates = Field(description="Where the raw record was read from.")
    scrubbed_fields: list[str] = Field(description="Columns whose values were scrubbed or masked.")


class RecordCleaned(Event[RecordCleanedPayload]):
    """A raw record passed validation and had its PII scrubbed."""

    topic: ClassVar[str] = RECORDS_CLEAN
    key_fields: ClassVar[tuple[str, ...]] = ("entity_id",)
    event_type: Literal["RecordCleaned"] = "RecordCleaned"
    schema_version: Literal[1] = 1


class RecordRejectedPayload(ContractModel):
    """Body of `RecordRejected`."""

    dataset: Name = Field(description="Dataset the record was published for.")
    source: KafkaCoordinates = Field(description="Where the raw record lives; the raw bytes stay there.")
    reason: Rejection = Field(description="Why the record was refused.")
    entity_id: Name | None = Field(default=None, description="Entity id, if one could be read.")
    record: Record | None = Field(
        default=None, description="The record as far as it could be parsed, already scrubbed."
    )
    raw_sha256: Sha256Hex = Field(description="SHA-256 of the raw message value.")
    raw_size: int = Field(ge=0, description="Size of the raw message value in bytes.")


class RecordRejected(Event[RecordRejectedPayload]):
    """Ingest refused a raw record; every raw offset ends up cleaned or rejected."""

    topic: ClassVar[str] = RECORDS_REJECTED
    key_fields: ClassVar[tuple[str, ...]] = ("entity_id",)
    event_type: Literal["RecordRejected"] = "RecordRejected"
    schema_version: Literal[1] = 1


class FeaturesUpdatedPayload(ContractModel):
    """Body of `FeaturesUpdated`."""

    feature_view: Name = Field(description="Feature view that received the rows.")
    entity_ids: list[str] = Field(description="Entities whose features changed.")
    rows: int = Field(ge=0, description="Number of feature rows pushed.")
    event_time_min: AwareDatetime = Field(description="Earliest event time among the rows.")
    event_time_max: AwareDatetime = Field(description="Latest event time among the rows.")
    sources: list[KafkaCoordinates] = Field(description="Clean records the rows were computed from.")


class FeaturesUpdated(Event[FeaturesUpdatedPayload]):
    """Feature rows were pushed to the online and offline stores."""

    topic: ClassVar[str] = FEATURES_UPDATED
    key_fields: ClassVar[tuple[str, ...]] = ("feature_view",)
    event_type: Literal["FeaturesUpdated"] = "FeaturesUpdated"
    schema_version: Literal[1] = 1


class LabelObservedPayload(ContractModel):
    """Body of `LabelObserved`."""

    dataset: Name = Field(description="Dataset the label belongs to.")
    entity_id: Name = Field(description="Entity the label is about (partition key).")
    label: int | float | str = Field(description="The observed ground truth.")
    event_time: AwareDatetime = Field(description="When the labelled outcome happened.")
    prediction_id: str | None = Field(default=None, description="Prediction this label resolves, if known.")
    source: Literal["client", "annotation"] = Field(
        default="client",
        description="Who observed it: a client or producer reporting the outcome (ground truth), or human"
        " annotators through the annotation service. A client's label always takes precedence over an"
        " annotation of the same entity or prediction. Absent in older events (client).",
    )
    task_id: str | None = Field(
        default=None, max_length=64, description="Annotation task the label came from (annotation only)."
    )
    annotators: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=20,
        description="Pseudonyms of the annotators whose answers agreed (annotation only); never their ids.",
    )
    agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of the task's annotations that gave this label (annotation only); a task whose"
        " annotators disagree publishes no label until the disagreement is resolved.",
    )


class LabelObserved(Event[LabelObservedPayload]):
    """A ground-truth label arrived (human annotation or delayed outcome)."""

    topic: ClassVar[str] = LABELS_OBSERVED
    key_fields: ClassVar[tuple[str, ...]] = ("entity_id",)
    event_type: Literal["LabelObserved"] = "LabelObserved"
    schema_version: Literal[1] = 1
