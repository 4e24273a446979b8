"""Helpers shared by the audit tests (no tests here): a flow of contract events behind one prediction,
stores on temporary SQLite files, and the raw-SQL tampering an attacker with database access would do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    GateCheck,
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
    ModelTrained,
    ModelTrainedPayload,
    PredictionMade,
    PredictionMadePayload,
    TrainingRequested,
    TrainingRequestedPayload,
)
from contracts.registry import encode_event
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.entry import Captured

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "cd" * 32


def lineage_flow(
    prediction_id: str = "pred-42", model: str = "fraud", version: str = "7"
) -> list[Event[Any]]:
    """drift -> training request -> trained -> promoted -> prediction, linked as the services link them."""
    drift = DriftDetected.create(
        DriftDetectedPayload(
            kind="data", feature="amount", detector="ADWIN", statistic=0.4, threshold=0.2,
            window_start=T0, window_end=T0 + timedelta(hours=1), window_size=500, model_name=model,
        ),
        producer="drift",
    )  # fmt: skip
    request = TrainingRequested.create(
        TrainingRequestedPayload(
            model_name=model, reason="drift", requested_by="training", trigger_event_id=str(drift.event_id)
        ),
        producer="training",
        caused_by=drift,
    )
    evidence = GateEvidence(
        checks=[GateCheck(name="auc_not_worse", passed=True, value=0.93, threshold=0.9)],
        candidate_metrics={"auc": 0.93},
        champion_metrics={"auc": 0.9},
        champion_version="6",
    )
    trained = ModelTrained.create(
        ModelTrainedPayload(
            model_name=model, model_version=version, run_id=f"run-{version}", metrics={"auc": 0.93},
            window_start=T0 - timedelta(days=30), window_end=T0, dataset_version="2025-01-02",
            dataset_sha256=SHA, feature_views=["customer_stats"], code_version="abc123",
        ),
        producer="training",
        caused_by=request,
    )  # fmt: skip
    promoted = ModelPromoted.create(
        ModelPromotedPayload(
            model_name=model, model_version=version, run_id=f"run-{version}", previous_version="6",
            evidence=evidence,
        ),
        producer="training",
        caused_by=trained,
    )  # fmt: skip
    prediction = PredictionMade.create(
        PredictionMadePayload(
            prediction_id=prediction_id, entity_id="customer-9", model_name=model, model_version=version,
            score=0.81, decision="review", features={"amount_mean_7d": 40.0}, latency_ms=2.5,
        ),
        producer="serving",
    )  # fmt: skip
    return [drift, request, trained, promoted, prediction]


def captured(events: list[Event[Any]], topic: str | None = None, first_offset: int = 0) -> list[Captured]:
    """Events as the capture path receives them (one partition, consecutive offsets)."""
    return [
        Captured(topic or e.topic, 0, first_offset + i, 1_735_787_045_000, e.key(), encode_event(e))
        for i, e in enumerate(events)
    ]


def new_store(tmp_path: Path, name: str = "audit.db") -> SqlAuditStore:
    return open_store(f"sqlite:///{tmp_path / name}")


def open_store(url: str, app_role: str | None = None) -> SqlAuditStore:
    store = SqlAuditStore(url, app_role)
    store.migrate()
    return store


GUARDS = {  # the append-only triggers of each backend, as the migration names them
    "sqlite": [
        "DROP TRIGGER IF EXISTS audit_events_no_update",
        "DROP TRIGGER IF EXISTS audit_events_no_delete",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events",
        "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    ],
}


def as_attacker(store: SqlAuditStore, *statements: str) -> None:
    """Drop the append-only guards (as the table's owner, i.e. someone with database access), then run
    raw SQL, on a session of its own (never the store's, which may run as the application role)."""
    engine = create_engine(store.url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for drop in GUARDS[conn.dialect.name]:
                conn.exec_driver_sql(drop)
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()
