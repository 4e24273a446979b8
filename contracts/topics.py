"""Topic names and what travels on each. Partition counts and retention belong to infra, not here."""

from dataclasses import dataclass

RECORDS_RAW = "records.raw"
RECORDS_CLEAN = "records.clean"
RECORDS_REJECTED = "records.rejected"
DEADLETTERS = "platform.deadletters"
FEATURES_UPDATED = "features.updated"
LABELS_OBSERVED = "labels.observed"
PREDICTIONS_MADE = "predictions.made"
DRIFT_DETECTED = "drift.detected"
TRAINING_REQUESTED = "training.requested"
MODEL_TRAINED = "model.trained"
MODEL_PROMOTED = "model.promoted"
MODEL_REJECTED = "model.rejected"
MODEL_CANARY = "model.canary"
EXPLANATION_PRODUCED = "explanation.produced"
AUDIT_CHECKPOINTS = "audit.checkpoints"
BATCH_SCORED = "batch.scored"
REPLAYS = "platform.replays"
ANNOTATION_WEBHOOKS = "annotation.webhooks"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what it carries and how it is keyed.

    `event_types` is empty for a topic that does not carry enveloped events. `record_topic` marks
    per-record, high-volume topics, which infra gives at least 3 partitions.
    """

    name: str
    description: str
    event_types: tuple[str, ...]
    key: str
    record_topic: bool


def _events(name: str, event_type: str, key: str, description: str, record_topic: bool = False) -> TopicSpec:
    return TopicSpec(name, description, (event_type,), key, record_topic)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=RECORDS_RAW,
        description="Raw records from any producer and any Kafka client: plain JSON objects, not enveloped.",
        event_types=(),
        key="entity id (optional, chosen by the producer)",
        record_topic=True,
    ),
    _events(RECORDS_CLEAN, "RecordCleaned", "entity_id", "Validated records, PII scrubbed.", True),
    _events(RECORDS_REJECTED, "RecordRejected", "entity_id", "Raw records ingest refused, with why.", True),
    _events(DEADLETTERS, "DeadLettered", "none", "Messages a consumer could not parse or handle."),
    _events(FEATURES_UPDATED, "FeaturesUpdated", "feature_view", "Feature rows pushed to the store.", True),
    _events(LABELS_OBSERVED, "LabelObserved", "entity_id", "Ground-truth labels, often delayed.", True),
    _events(
        PREDICTIONS_MADE,
        "PredictionMade",
        "entity_id, else prediction_id",
        "Every prediction served, with the model version and features used.",
        True,
    ),
    _events(
        DRIFT_DETECTED, "DriftDetected", "model_name", "Data, prediction or concept drift, with evidence."
    ),
    _events(TRAINING_REQUESTED, "TrainingRequested", "model_name", "Requests to (re)train a model."),
    _events(MODEL_TRAINED, "ModelTrained", "model_name", "Finished training runs, with metrics and lineage."),
    _events(
        MODEL_PROMOTED,
        "ModelPromoted",
        "model_name",
        "New champions: candidates that passed the gate, and ops rollbacks to an earlier champion.",
    ),
    _events(
        MODEL_REJECTED, "ModelRejected", "model_name", "Candidates that failed the gate, or failed runs."
    ),
    _events(
        MODEL_CANARY, "CanaryChanged", "model_name", "Canaries started or ended by ops, with the reason."
    ),
    _events(EXPLANATION_PRODUCED, "ExplanationProduced", "model_name", "Global and local explanations."),
    _events(
        BATCH_SCORED,
        "BatchScored",
        "model_name",
        "Batch scoring runs: the model, the input's SHA-256, the row count and where the scores are.",
    ),
    _events(AUDIT_CHECKPOINTS, "AuditCheckpointed", "none", "Heads of the audit hash chain, for anchoring."),
    _events(REPLAYS, "ReplayCompleted", "service", "Replays of the log into a fresh consumer group (ops)."),
    TopicSpec(
        name=ANNOTATION_WEBHOOKS,
        description="Label Studio webhook bodies as the annotation service received them (authenticated,"
        " size-limited, not enveloped); it consumes them like any input, so a bad one is dead-lettered.",
        event_types=(),
        key="Label Studio task id (none when the body names none)",
        record_topic=False,
    ),
)


def topic_names() -> list[str]:
    """Every topic name, in catalogue order."""
    return [spec.name for spec in TOPICS]
