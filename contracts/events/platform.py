"""Platform-wide events: dead letters, audit checkpoints and replays of the log."""

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.common import ContractModel, KafkaCoordinates, Name, Rejection, Sha256Hex
from contracts.envelope import Event
from contracts.topics import AUDIT_CHECKPOINTS, DEADLETTERS, REPLAYS


class DeadLetteredPayload(ContractModel):
    """Body of `DeadLettered`."""

    # The raw bytes stay addressable in their source topic by `source`; the dead letter never copies
    # them, because they may hold PII. Digest and size let anyone check they fetched the right bytes.
    source: KafkaCoordinates = Field(description="Where the unhandled message lives.")
    consumer: str = Field(min_length=1, max_length=256, description="Service or consumer group that gave up.")
    reason: Rejection = Field(description="Why the message could not be parsed or handled.")
    raw_sha256: Sha256Hex = Field(description="SHA-256 of the raw message value.")
    raw_size: int = Field(ge=0, description="Size of the raw message value in bytes.")
    key_sha256: Sha256Hex | None = Field(default=None, description="SHA-256 of the message key, if any.")


class DeadLettered(Event[DeadLetteredPayload]):
    """A consumer could not parse or handle a message and set it aside."""

    topic: ClassVar[str] = DEADLETTERS
    event_type: Literal["DeadLettered"] = "DeadLettered"
    schema_version: Literal[1] = 1


class AuditCheckpointedPayload(ContractModel):
    """Body of `AuditCheckpointed`."""

    chain_length: int = Field(ge=0, description="Number of entries in the audit hash chain.")
    head_hash: Sha256Hex = Field(description="Hash of the latest chain entry.")
    last_event_id: UUID | None = Field(
        default=None, description="Event id of the latest entry; null when empty."
    )
    covered_until: AwareDatetime = Field(description="Every event recorded before this instant is covered.")
    # Optional since the checkpoints were signed (older checkpoints carry none of these): a verifier
    # trusts a checkpoint only when `signature` verifies under a public key it was configured with.
    chain_name: str | None = Field(
        default=None, min_length=1, max_length=256, description="Name of the chain (from settings)."
    )
    genesis_hash: Sha256Hex | None = Field(default=None, description="Hash of the chain's first entry.")
    key_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{16}$", description="First 16 hex of SHA-256 of the public key."
    )
    signature: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Base64 Ed25519 signature over the checkpoint's canonical message (docs/audit.md).",
    )


class AuditCheckpointed(Event[AuditCheckpointedPayload]):
    """The audit service published the head of its hash chain, so later tampering is detectable."""

    topic: ClassVar[str] = AUDIT_CHECKPOINTS
    event_type: Literal["AuditCheckpointed"] = "AuditCheckpointed"
    schema_version: Literal[1] = 1


class ReplayedPartition(ContractModel):
    """The window a replay read on one partition: [from_offset, to_offset)."""

    topic: Name = Field(description="Kafka topic name.")
    partition: int = Field(ge=0, description="Partition number within the topic.")
    from_offset: int = Field(ge=0, description="First offset read.")
    to_offset: int = Field(ge=0, description="End offset captured when the replay began (exclusive).")


class ReplayCompletedPayload(ContractModel):
    """Body of `ReplayCompleted`."""

    service: Name = Field(description="Service whose consumer was replayed (features, drift, audit).")
    group: Name = Field(description="The fresh consumer group the replay read with.")
    partitions: list[ReplayedPartition] = Field(description="Window read, per partition.")
    records: int = Field(ge=0, description="Records in the window.")
    duration_s: float = Field(ge=0, description="Seconds from the process's start to the window's end.")
    publish: bool = Field(description="Whether the replay published the service's outgoing events.")
    withheld: dict[str, int] = Field(
        default_factory=dict, description="Events not published, per topic (empty with `publish`)."
    )
    state_dir: str = Field(max_length=4096, description="Folder the rebuilt state was written to.")
    requested_by: Name = Field(description="Who ran the replay (the operating-system user).")


class ReplayCompleted(Event[ReplayCompletedPayload]):
    """Ops replayed a window of the log into a fresh consumer group of a service (`mlops replay`)."""

    topic: ClassVar[str] = REPLAYS
    key_fields: ClassVar[tuple[str, ...]] = ("service",)
    event_type: Literal["ReplayCompleted"] = "ReplayCompleted"
    schema_version: Literal[1] = 1
