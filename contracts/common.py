"""Building blocks shared by the contracts: base model, scalar aliases, small value types, the error."""

from typing import Annotated, TypeAlias

from pydantic import BaseModel, ConfigDict, Field


class ContractModel(BaseModel):
    """Base of every payload and nested value in the contracts."""

    # extra="ignore": a consumer built against an older schema must accept messages from a newer
    # producer that added optional fields (forward compatibility). frozen: events are facts.
    # allow_inf_nan=False: NaN/Infinity are not JSON; refusing them here keeps encode/parse symmetric.
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


Scalar: TypeAlias = str | int | float | bool | None
"""A JSON scalar, as found in a flat record or a feature vector."""

Record: TypeAlias = dict[str, Scalar]
"""A flat record: column name to scalar value."""

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest as 64 lowercase hex characters."""

Name = Annotated[str, Field(min_length=1, max_length=256)]
"""A non-empty identifier: dataset, model, feature view, entity id and the like."""


class KafkaCoordinates(ContractModel):
    """Where a message lives in Kafka: enough to fetch it again."""

    topic: Name = Field(description="Kafka topic name.")
    partition: int = Field(ge=0, description="Partition number within the topic.")
    offset: int = Field(ge=0, description="Offset of the message within the partition.")


class FieldError(ContractModel):
    """One validation failure, described without echoing the offending value (it may hold PII)."""

    field: str = Field(description="Dotted path of the failing field, e.g. 'payload.score'.")
    code: str = Field(description="Machine-readable error code, e.g. 'missing', 'int_parsing'.")
    message: str = Field(description="Human-readable explanation; never contains the input value.")


class Rejection(ContractModel):
    """Why a message was refused."""

    code: str = Field(
        min_length=1,
        max_length=64,
        description="Machine-readable reason, e.g. 'not_json', 'schema_violation', 'too_large'.",
    )
    message: str = Field(description="Human-readable explanation; never contains raw input values.")
    errors: list[FieldError] = Field(default_factory=list, description="Per-field failures, if any.")


class ContractError(ValueError):
    """A message that is not a valid event. `code` is machine-readable, `errors` per field.

    Codes: not_json, not_object, unknown_event_type, unsupported_schema_version, schema_violation.
    Messages never contain input values.
    """

    def __init__(self, code: str, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors: list[FieldError] = errors or []
