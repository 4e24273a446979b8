"""The training use cases with fakes: what is published for each outcome and in which order, redelivery,
labels (stored once, bad ones ignored), drift only when the policy allows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    LabelObserved,
    LabelObservedPayload,
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    TrainingRequested,
)
from services.training.adapters.state import TrainingState
from services.training.domain.policy import GatePolicy
from services.training.handlers import Topics, TrainingService
from services.training.trainer import Trainer
from tests.support import training_request
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = Topics("t.requests", "t.trained", "t.promoted", "t.rejected")


class Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[Event[Any], str]] = []

    async def publish(self, event: Event[Any], topic: str) -> None:
        self.sent.append((event, topic))

    def types(self) -> list[str]:
        return [e.event_type for e, _ in self.sent]


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(400)


def make(
    tmp_path: Path, features: pd.DataFrame, policy: GatePolicy | None = None
) -> tuple[TrainingService, Bus]:
    policy = policy or GatePolicy()
    state, bus = TrainingState(tmp_path / "state.db"), Bus()
    trainer = Trainer(state, FakeSource(features), FakeRegistry(), lambda: policy, "code")
    service = TrainingService(
        trainer, state, bus.publish, TOPICS, "credit", "loan_applications", lambda: policy
    )
    return service, bus


def label(entity: str, value: object, at: datetime, dataset: str = "loan_applications") -> LabelObserved:
    payload = LabelObservedPayload(dataset=dataset, entity_id=entity, label=value, event_time=at)  # type: ignore[arg-type]
    return LabelObserved.create(payload, producer="tests")


async def feed_labels(service: TrainingService, features: pd.DataFrame) -> None:
    for row in features.to_dict("records"):
        value = "bad" if row["_label"] else "good"
        await service.on_label(label(row["application_id"], value, row["applied_at"] + timedelta(seconds=5)))


async def test_labels_are_stored_once_and_bad_ones_ignored(tmp_path: Path, features: pd.DataFrame) -> None:
    service, _ = make(tmp_path, features)
    first = label("a1", "bad", T0)
    await service.on_label(first)
    await service.on_label(first)  # redelivered
    await service.on_label(label("a2", "maybe", T0))
    await service.on_label(label("a3", 1, T0))
    await service.on_label(label("a4", "good", T0, dataset="transactions"))
    await service.on_label(label("a1", "good", T0 + timedelta(hours=1)))  # a correction: newest wins
    labels = service.state.latest_labels()
    assert labels.to_dict("records") == [
        {"application_id": "a1", "label": 0, "event_timestamp": pd.Timestamp(T0 + timedelta(hours=1))}
    ]


async def test_a_promotion_publishes_trained_then_promoted_caused_by_the_request(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features)
    await feed_labels(service, features)
    request = training_request(model="credit")
    outcome = await service.on_training_requested(request)
    assert outcome is not None and outcome.status == "promoted"
    assert bus.types() == ["ModelTrained", "ModelPromoted"]
    assert [topic for _, topic in bus.sent] == ["t.trained", "t.promoted"]
    trained, promoted = bus.sent[0][0], bus.sent[1][0]
    assert isinstance(trained, ModelTrained) and isinstance(promoted, ModelPromoted)
    for event in (trained, promoted):
        assert event.causation_id == str(request.event_id) and event.correlation_id == request.correlation_id
    assert trained.payload.window_start <= trained.payload.window_end
    assert trained.payload.dataset_sha256 == outcome.lineage["dataset_sha256"]
    assert (
        trained.payload.feature_views == ["loan_application_features"]
        and trained.payload.code_version == "code"
    )
    assert promoted.payload.model_version == "1" and promoted.payload.previous_version is None
    assert promoted.payload.evidence.checks and promoted.payload.evidence.candidate_metrics["auc"] > 0.65
    latest = service.state.latest_run()
    assert (
        latest is not None
        and latest["status"] == "promoted"
        and latest["request_id"] == str(request.event_id)
    )

    assert await service.on_training_requested(request) is None  # redelivered: not run again
    assert len(bus.sent) == 2


async def test_too_few_labels_publishes_a_rejection_without_a_version(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features)
    await feed_labels(service, features.head(20))
    outcome = await service.on_training_requested(training_request(model="credit"))
    assert outcome is not None and outcome.status == "rejected"
    [(rejected, topic)] = bus.sent
    assert isinstance(rejected, ModelRejected) and topic == "t.rejected"
    assert rejected.payload.model_version is None and rejected.payload.evidence is None
    assert rejected.payload.reasons == ["too few labels: 20 labelled entities, the policy needs 200"]


async def test_a_crashing_run_is_reported_as_a_rejection(tmp_path: Path, features: pd.DataFrame) -> None:
    service, bus = make(tmp_path, features)
    await feed_labels(service, features)

    def broken(_: TrainingRequested) -> Any:
        raise ConnectionError("tracking server unreachable")

    service.trainer.run = broken  # type: ignore[method-assign]
    outcome = await service.on_training_requested(training_request(model="credit"))
    assert outcome is not None and bus.types() == ["ModelRejected"]
    assert bus.sent[0][0].payload.reasons == ["training failed: ConnectionError: tracking server unreachable"]


async def test_requests_for_another_model_are_ignored(tmp_path: Path, features: pd.DataFrame) -> None:
    service, bus = make(tmp_path, features)
    assert await service.on_training_requested(training_request(model="fraud")) is None
    assert not bus.sent


def drift(model: str | None = "credit") -> DriftDetected:
    payload = DriftDetectedPayload(
        kind="data", feature="credit_amount", detector="ADWIN", statistic=0.4, window_start=T0,
        window_end=T0 + timedelta(hours=1), window_size=100, model_name=model,
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def test_drift_asks_for_training_only_when_the_policy_allows(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features)
    await service.on_drift(drift())
    assert not bus.sent  # retrain_on_drift is false by default
    service, bus = make(tmp_path / "on", features, GatePolicy(retrain_on_drift=True))
    await service.on_drift(drift("fraud"))
    assert not bus.sent  # another model's drift
    event = drift()
    await service.on_drift(event)
    [(request, topic)] = bus.sent
    assert isinstance(request, TrainingRequested) and topic == "t.requests"
    assert request.payload.reason == "drift" and request.payload.trigger_event_id == str(event.event_id)
    assert request.causation_id == str(event.event_id) and request.payload.model_name == "credit"
