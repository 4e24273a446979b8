"""One valid, deterministic example of every event, for tests and documentation."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.common import FieldError, KafkaCoordinates, Rejection
from contracts.envelope import Event
from contracts.events import (
    AuditCheckpointed,
    AuditCheckpointedPayload,
    BatchScored,
    BatchScoredPayload,
    CanaryChanged,
    CanaryChangedPayload,
    DeadLettered,
    DeadLetteredPayload,
    DriftDetected,
    DriftDetectedPayload,
    ExplanationProduced,
    ExplanationProducedPayload,
    FeaturesUpdated,
    FeaturesUpdatedPayload,
    GateCheck,
    GateEvidence,
    LabelObserved,
    LabelObservedPayload,
    ModelPromoted,
    ModelPromotedPayload,
    ModelRejected,
    ModelRejectedPayload,
    ModelTrained,
    ModelTrainedPayload,
    PredictionMade,
    PredictionMadePayload,
    RecordCleaned,
    RecordCleanedPayload,
    RecordRejected,
    RecordRejectedPayload,
    ReplayCompleted,
    ReplayCompletedPayload,
    ReplayedPartition,
    TrainingRequested,
    TrainingRequestedPayload,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
SHA = "ab" * 32
RAW = KafkaCoordinates(topic="records.raw", partition=1, offset=42)
CLEAN = KafkaCoordinates(topic="records.clean", partition=1, offset=40)
REJECTION = Rejection(
    code="schema_violation",
    message="record does not match dataset schema",
    errors=[FieldError(field="amount", code="float_parsing", message="Input should be a valid number")],
)
EVIDENCE = GateEvidence(
    checks=[GateCheck(name="auc_not_worse", passed=True, value=0.91, threshold=0.89)],
    candidate_metrics={"auc": 0.91},
    champion_metrics={"auc": 0.89},
    champion_version="3",
)


def sample_payloads() -> dict[type[Event[Any]], Any]:
    """A valid payload for every event class."""
    return {
        RecordCleaned: RecordCleanedPayload(
            dataset="transactions",
            entity_id="customer-1",
            event_time=T0,
            record={"amount": 12.5, "count": 3, "country": "FR", "vip": False, "note": None},
            source=RAW,
            scrubbed_fields=["email"],
        ),
        RecordRejected: RecordRejectedPayload(
            dataset="transactions",
            source=RAW,
            reason=REJECTION,
            entity_id="customer-1",
            raw_sha256=SHA,
            raw_size=87,
        ),
        DeadLettered: DeadLetteredPayload(
            source=CLEAN, consumer="features", reason=REJECTION, raw_sha256=SHA, raw_size=120, key_sha256=SHA
        ),
        FeaturesUpdated: FeaturesUpdatedPayload(
            feature_view="customer_stats",
            entity_ids=["customer-1"],
            rows=1,
            event_time_min=T0,
            event_time_max=T0,
            sources=[CLEAN],
        ),
        LabelObserved: LabelObservedPayload(
            dataset="transactions", entity_id="customer-1", label=1, event_time=T1, prediction_id="pred-1"
        ),
        PredictionMade: PredictionMadePayload(
            prediction_id="pred-1",
            entity_id="customer-1",
            model_name="fraud",
            model_version="4",
            score=0.87,
            decision="review",
            features={"amount_mean_7d": 40.2, "tx_count_7d": 5},
            latency_ms=3.2,
        ),
        DriftDetected: DriftDetectedPayload(
            kind="data",
            feature="amount",
            detector="ADWIN",
            statistic=0.31,
            threshold=0.2,
            window_start=T0,
            window_end=T1,
            window_size=500,
            model_name="fraud",
            model_version="4",
            first_source=CLEAN,
            last_source=CLEAN,
        ),
        TrainingRequested: TrainingRequestedPayload(
            model_name="fraud", reason="drift", requested_by="training", params={"max_depth": 6}
        ),
        ModelTrained: ModelTrainedPayload(
            model_name="fraud",
            model_version="5",
            run_id="run-abc",
            metrics={"auc": 0.91},
            window_start=T0,
            window_end=T1,
            dataset_version="2025-01-02",
            dataset_sha256=SHA,
            feature_views=["customer_stats"],
            code_version="0123abc",
        ),
        ModelPromoted: ModelPromotedPayload(
            model_name="fraud", model_version="5", run_id="run-abc", previous_version="4", evidence=EVIDENCE
        ),
        ModelRejected: ModelRejectedPayload(
            model_name="fraud",
            model_version="5",
            run_id="run-abc",
            reasons=["auc below champion"],
            evidence=EVIDENCE,
        ),
        ExplanationProduced: ExplanationProducedPayload(
            scope="global",
            model_name="fraud",
            model_version="5",
            methods=["shap"],
            summary="Amount and transaction count drive the score.",
            fidelity={"r2": 0.93, "stable": True},
        ),
        AuditCheckpointed: AuditCheckpointedPayload(
            chain_length=1000, head_hash=SHA, last_event_id=UUID(int=7), covered_until=T1
        ),
        CanaryChanged: CanaryChangedPayload(
            model_name="fraud",
            action="started",
            model_version="6",
            share=0.1,
            champion_version="5",
            reason="candidate 6 was inconclusive at the gate: try it on live traffic",
            requested_by="ops:alice",
        ),
        BatchScored: BatchScoredPayload(
            job_id="3f2a9c",
            model_name="fraud",
            model_version="5",
            input_sha256=SHA,
            rows=1000,
            source="file",
            content_type="application/vnd.apache.parquet",
            output="serving/batch/3f2a9c/scores.parquet",
            output_sha256="cd" * 32,
            duration_s=1.5,
        ),
        ReplayCompleted: ReplayCompletedPayload(
            service="features",
            group="replay-2026-01-01",
            partitions=[ReplayedPartition(topic="records.clean", partition=0, from_offset=0, to_offset=1000)],
            records=1000,
            duration_s=4.2,
            publish=False,
            withheld={"features.updated": 2},
            state_dir="/var/lib/mlops/replays/replay-2026-01-01",
            requested_by="alice",
        ),
    }


def sample_events() -> list[Event[Any]]:
    """One event of every class, with fixed ids and times."""
    return [
        cls.model_validate(
            {"event_id": UUID(int=i + 1), "occurred_at": T1, "producer": "samples", "payload": payload}
        )
        for i, (cls, payload) in enumerate(sample_payloads().items())
    ]
