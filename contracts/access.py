"""Who may write and read which topic: the bus's access plan, one entry per principal.

The broker's ACLs are made from this table (infra/bus_access.py), and each service's own broker
declarations (its AsyncAPI operations) must fit inside its entry (tests/unit/test_bus_access.py), so
the two cannot drift apart. A service runs as the principal of its own name; it may read the topics
it consumes, write the topics it owns and its dead letters, and use consumer groups whose names start
with its name. `producer` is the principal handed to whoever streams records in: it can write raw
records and labels and nothing else. Ops tooling (`mlops`) runs as the broker's super user.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.topics import (
    ANNOTATION_WEBHOOKS,
    AUDIT_CHECKPOINTS,
    BATCH_SCORED,
    DEADLETTERS,
    DRIFT_DETECTED,
    EXPLANATION_PRODUCED,
    FEATURES_UPDATED,
    LABELS_OBSERVED,
    MODEL_CANARY,
    MODEL_PROMOTED,
    MODEL_REJECTED,
    MODEL_TRAINED,
    PREDICTIONS_MADE,
    RECORDS_CLEAN,
    RECORDS_RAW,
    RECORDS_REJECTED,
    TRAINING_REQUESTED,
    topic_names,
)


@dataclass(frozen=True)
class Access:
    """What one principal may do: write `writes`, read `reads`, and join consumer groups whose names
    start with `group_prefix` (None: it consumes nothing, or only without a group)."""

    writes: tuple[str, ...]
    reads: tuple[str, ...]
    group_prefix: str | None


def _service(name: str, writes: tuple[str, ...], reads: tuple[str, ...]) -> Access:
    # Every service dead-letters what it cannot handle, so every service may write the dead letters.
    return Access(writes=(*writes, DEADLETTERS), reads=reads, group_prefix=name)


PRODUCER = "producer"

ACCESS: dict[str, Access] = {
    PRODUCER: Access(writes=(RECORDS_RAW, LABELS_OBSERVED), reads=(), group_prefix=None),
    # Ingest also appends what producers POST to its /records route to the raw topic.
    "ingest": _service("ingest", (RECORDS_CLEAN, RECORDS_REJECTED, RECORDS_RAW), (RECORDS_RAW,)),
    "features": _service("features", (FEATURES_UPDATED,), (RECORDS_CLEAN,)),
    "training": _service(
        "training",
        (MODEL_TRAINED, MODEL_PROMOTED, MODEL_REJECTED, MODEL_CANARY, TRAINING_REQUESTED),
        (LABELS_OBSERVED, TRAINING_REQUESTED, DRIFT_DETECTED),
    ),
    "serving": _service(
        "serving", (PREDICTIONS_MADE, LABELS_OBSERVED, BATCH_SCORED), (MODEL_PROMOTED, MODEL_CANARY)
    ),
    "drift": _service(
        "drift",
        (DRIFT_DETECTED,),
        (RECORDS_CLEAN, PREDICTIONS_MADE, LABELS_OBSERVED, MODEL_TRAINED, MODEL_PROMOTED),
    ),
    "explain": _service("explain", (EXPLANATION_PRODUCED,), (MODEL_PROMOTED, PREDICTIONS_MADE)),
    # The audit reads the whole bus: it records every event, on every topic.
    "audit": _service("audit", (AUDIT_CHECKPOINTS,), tuple(topic_names())),
    "annotation": _service(
        "annotation",
        (LABELS_OBSERVED, ANNOTATION_WEBHOOKS),
        (ANNOTATION_WEBHOOKS, DRIFT_DETECTED, EXPLANATION_PRODUCED, LABELS_OBSERVED, PREDICTIONS_MADE),
    ),
}


def writers_of(topic: str) -> list[str]:
    """The principals that may write `topic`, in table order."""
    return [name for name, access in ACCESS.items() if topic in access.writes]
