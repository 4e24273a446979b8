"""The envelope every event travels in: identity, type, version, time, origin and causality."""

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from contracts.common import ContractModel

P = TypeVar("P", bound=ContractModel)


def _utc_now() -> datetime:
    return datetime.now(UTC)


WIRE_REQUIRED = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "producer",
    "correlation_id",
    "payload",
)
"""Envelope fields every message on the wire carries, although constructors default some of them."""


def _wire_schema(schema: JsonDict) -> None:
    """Make the exported schema describe messages on the wire rather than constructor arguments."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    # Subclasses narrow event_type/schema_version to literals, which drops the base descriptions.
    for name, field in Event.model_fields.items():
        prop = properties.get(name)
        if isinstance(prop, dict) and "description" not in prop and field.description:
            prop["description"] = field.description
    schema["required"] = list(WIRE_REQUIRED)


class Event(BaseModel, Generic[P]):
    """Base of every event: the envelope around a typed payload `P`.

    Concrete events subclass `Event[SomePayload]`, fix `event_type` and `schema_version` as
    literals, and set the class variables `topic` and `key_fields`.
    """

    # extra="ignore": consumers tolerate fields added by newer producers (forward compatibility);
    # frozen: an event is a fact and is never edited after it is made.
    model_config = ConfigDict(
        extra="ignore", frozen=True, allow_inf_nan=False, json_schema_extra=_wire_schema
    )

    topic: ClassVar[str]
    """Kafka topic the event is published to."""
    key_fields: ClassVar[tuple[str, ...]] = ()
    """Dotted paths into the payload tried in order for the partition key; none set means no key."""

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; consumers dedupe on it.")
    event_type: str = Field(description="Name of the event, in the past tense, e.g. 'PredictionMade'.")
    schema_version: int = Field(description="Version of this event type's schema; bumped on breaks.")
    occurred_at: AwareDatetime = Field(
        default_factory=_utc_now, description="When the fact happened (timezone-aware)."
    )
    producer: str = Field(min_length=1, max_length=64, description="Name of the service that emitted it.")
    # A root event starts its own flow, named after its event id. The factory sees the validated
    # event_id, so the default is computed from it; callers may omit the argument.
    correlation_id: str = Field(
        default_factory=lambda data: str(data["event_id"]),
        min_length=1,
        max_length=128,
        description="Id shared by every event of one flow; defaults to the event id of its root.",
    )
    causation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Event id of the event that directly caused this one, if any.",
    )
    payload: P = Field(description="The event-specific body.")

    @classmethod
    def type_name(cls) -> str:
        """The literal `event_type` of this class."""
        return str(cls.model_fields["event_type"].default)

    @classmethod
    def version(cls) -> int:
        """The current `schema_version` of this class."""
        return int(cls.model_fields["schema_version"].default)

    @classmethod
    def create(
        cls,
        payload: P,
        producer: str,
        *,
        caused_by: "Event[Any] | None" = None,
        correlation_id: str | None = None,
    ) -> Self:
        """Make a new event; `caused_by` links it to its parent (same flow, parent as cause).

        An explicit `correlation_id` wins over the parent's.
        """
        fields: dict[str, Any] = {"payload": payload, "producer": producer}
        if caused_by is not None:
            fields["correlation_id"] = caused_by.correlation_id
            fields["causation_id"] = str(caused_by.event_id)
        if correlation_id is not None:
            fields["correlation_id"] = correlation_id
        return cls.model_validate(fields)

    def key(self) -> bytes | None:
        """Kafka partition key: the first non-null field named in `key_fields`, UTF-8 encoded."""
        for path in self.key_fields:
            value: Any = self.payload
            for part in path.split("."):
                value = getattr(value, part)
            if value is not None:
                return str(value).encode("utf-8")
        return None
