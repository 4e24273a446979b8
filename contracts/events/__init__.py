"""The event catalogue. Add a new event to its module and to `ALL_EVENTS`."""

from typing import Any

from contracts.envelope import Event
from contracts.events.lifecycle import (
    CanaryChanged,
    CanaryChangedPayload,
    GateCheck,
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
    ModelRejected,
    ModelRejectedPayload,
    ModelTrained,
    ModelTrainedPayload,
    TrainingRequested,
    TrainingRequestedPayload,
)
from contracts.events.monitoring import (
    BatchScored,
    BatchScoredPayload,
    DriftDetected,
    DriftDetectedPayload,
    ExplanationProduced,
    ExplanationProducedPayload,
    PredictionMade,
    PredictionMadePayload,
)
from contracts.events.platform import (
    AuditCheckpointed,
    AuditCheckpointedPayload,
    DeadLettered,
    DeadLetteredPayload,
)
from contracts.events.records import (
    FeaturesUpdated,
    FeaturesUpdatedPayload,
    LabelObserved,
    LabelObservedPayload,
    RecordCleaned,
    RecordCleanedPayload,
    RecordRejected,
    RecordRejectedPayload,
)

ALL_EVENTS: tuple[type[Event[Any]], ...] = (
    RecordCleaned,
    RecordRejected,
    DeadLettered,
    FeaturesUpdated,
    LabelObserved,
    PredictionMade,
    DriftDetected,
    TrainingRequested,
    ModelTrained,
    ModelPromoted,
    ModelRejected,
    CanaryChanged,
    ExplanationProduced,
    BatchScored,
    AuditCheckpointed,
)

__all__ = [
    "ALL_EVENTS",
    "AuditCheckpointed",
    "AuditCheckpointedPayload",
    "BatchScored",
    "BatchScoredPayload",
    "CanaryChanged",
    "CanaryChangedPayload",
    "DeadLettered",
    "DeadLetteredPayload",
    "DriftDetected",
    "DriftDetectedPayload",
    "ExplanationProduced",
    "ExplanationProducedPayload",
    "FeaturesUpdated",
    "FeaturesUpdatedPayload",
    "GateCheck",
    "GateEvidence",
    "LabelObserved",
    "LabelObservedPayload",
    "ModelPromoted",
    "ModelPromotedPayload",
    "ModelRejected",
    "ModelRejectedPayload",
    "ModelTrained",
    "ModelTrainedPayload",
    "PredictionMade",
    "PredictionMadePayload",
    "RecordCleaned",
    "RecordCleanedPayload",
    "RecordRejected",
    "RecordRejectedPayload",
    "TrainingRequested",
    "TrainingRequestedPayload",
]
