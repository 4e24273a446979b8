"""Helpers shared by the audit tests (no tests here): a flow of contract events behind one prediction,
stores on temporary SQLite files, and the raw-SQL tampering an attacker with database access would do."""

from __future__ import annotations

from collections.abc import Iterator
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
from contracts.samples import sample_events
from services.audit.adapters.store import SqlAuditStore
from services.audit.adapters.subject_keys import SubjectKeys
from services.audit.domain.anchors import LogRecord, PublishedCheckpoint
from services.audit.domain.chain import CHAIN_FIELDS, GENESIS, link
from services.audit.domain.entry import Captured

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYS = SubjectKeys(bytes(range(32)))  # the subject secret of the tests' stores (crypto-shredding)
SHA = "cd" * 32


def audit_samples() -> list[Event[Any]]:
    """The sample events the store tests' row numbers were written for: the first 13 event types
    (types added later, such as CanaryChanged, are stored like any other: test_audit_routes.py)."""
    return sample_events()[:13]


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
    store = SqlAuditStore(url, app_role, KEYS)
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


class MemoryLog:
    """The Kafka log verify reads (adapters.kafka_log.KafkaLog's port), in memory: the records a test
    captured, the checkpoints it published, and what the audit consumer groups committed (by default,
    everything: the service consumed all it was given). `start` sets where retention begins."""

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], dict[int, LogRecord]] = {}
        self.published: list[PublishedCheckpoint] = []
        self.start: dict[tuple[str, int], int] = {}
        self.committed_offsets: dict[tuple[str, int], int] = {}

    def __enter__(self) -> MemoryLog:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def add(self, messages: list[Captured]) -> list[Captured]:
        for m in messages:
            self.partitions.setdefault((m.topic, m.partition), {})[m.offset] = LogRecord(
                m.offset, m.key, m.value
            )
            self.committed_offsets[(m.topic, m.partition)] = max(
                self.committed_offsets.get((m.topic, m.partition), 0), m.offset + 1
            )
        return messages

    def checkpoints(self, topic: str) -> list[PublishedCheckpoint]:
        return list(self.published)

    def bounds(self, topic: str) -> dict[int, tuple[int, int]]:
        return {
            p: (self.start.get((t, p), min(records)), max(records) + 1)
            for (t, p), records in self.partitions.items()
            if t == topic
        }

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return {p: offset for (t, p), offset in self.committed_offsets.items() if t == topic}

    def records(self, topic: str, partition: int, start: int, stop: int) -> Iterator[LogRecord]:
        held = self.partitions.get((topic, partition), {})
        first = self.start.get((topic, partition), 0)
        return iter([held[o] for o in sorted(held) if max(start, first) <= o < stop])


def rechain(store: SqlAuditStore, first: int = 1) -> None:
    """What an attacker with the database and the (public) chain algorithm does after an edit: recompute
    every hash from row `first` on, so the chain is consistent with itself again."""
    rows = list(store.chain_rows(1))
    prev = bytes.fromhex(rows[first - 2][-1]) if first > 1 else GENESIS
    statements = []
    for row in rows[first - 1 :]:
        prev = link(prev, row[: len(CHAIN_FIELDS)], row[len(CHAIN_FIELDS)])
        statements.append(f"UPDATE audit_events SET row_hash = '{prev.hex()}' WHERE seq = {row[0]}")
    as_attacker(store, *statements)
