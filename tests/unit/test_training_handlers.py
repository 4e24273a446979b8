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
    return feature_frame(1500)


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


async def test_an_annotation_never_overrides_a_clients_label_whatever_the_order(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, _ = make(tmp_path, features)

    def annotated(entity: str, value: str, at: datetime) -> LabelObserved:
        payload = LabelObservedPayload(
            dataset="loan_applications", entity_id=entity, label=value, event_time=at,
            source="annotation", task_id="7", annotators=["annotator-0123456789abcdef"], agreement=1.0,
        )  # fmt: skip
        return LabelObserved.create(payload, producer="annotation")

    await service.on_labels([label("c1", "bad", T0), annotated("c1", "good", T0 + timedelta(hours=1))])
    await service.on_labels([annotated("c2", "good", T0)])
    await service.on_labels([label("c2", "bad", T0 - timedelta(hours=1))])  # the client's, older, later
    await service.on_labels([annotated("c3", "bad", T0)])  # only an annotation: it is used
    latest = service.state.latest_labels().set_index("application_id")["label"].to_dict()
    assert latest == {"c1": 1, "c2": 1, "c3": 1}
    assert service.state.label_events() == 5 and service.state.label_count() == 3


def test_a_state_file_from_before_label_sources_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE labels (event_id TEXT PRIMARY KEY, entity_id TEXT NOT NULL, label INTEGER NOT NULL,"
            " observed_at TEXT NOT NULL, received_at TEXT NOT NULL)"
        )
        old_row = ("e1", "d1", 0, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00")
        db.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?)", old_row)
    state = TrainingState(path)
    assert state.add_labels([("e2", "d1", 1, T0)], ["annotation"]) == [True]
    assert state.latest_labels()["label"].tolist() == [0]  # the old row is a client's: it wins


async def test_a_batch_of_labels_is_stored_once_each_in_one_call(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, _ = make(tmp_path, features)
    first, second = label("b1", "bad", T0), label("b2", "good", T0)
    await service.on_labels([first, label("b9", "maybe", T0), second, first])  # a duplicate inside
    await service.on_labels([second, label("b3", "good", T0 + timedelta(minutes=1))])  # redelivery overlaps
    assert service.state.label_count() == 3
    assert service.state.latest_labels()["application_id"].tolist() == ["b1", "b2", "b3"]
    assert service.state.add_labels([]) == []


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


def drift(model: str | None = "credit", kind: str = "concept") -> DriftDetected:
    payload = DriftDetectedPayload(
        kind=kind, feature="credit_amount" if kind == "data" else None, detector="ADWIN",
        statistic=0.4, window_start=T0, window_end=T0 + timedelta(hours=1), window_size=100, model_name=model,
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def labels_for(service: TrainingService, n: int, prefix: str = "e") -> None:
    for i in range(n):
        await service.on_label(label(f"{prefix}{i}", "good", T0 + timedelta(minutes=i)))


async def test_drift_asks_for_training_only_when_the_policy_allows(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features)
    await labels_for(service, 60)
    assert (await service.on_drift(drift())).reason == "off"  # retrain_on_drift is false by default
    assert not bus.sent
    service, bus = make(tmp_path / "on", features, GatePolicy(retrain_on_drift=True))
    await labels_for(service, 60)
    assert (await service.on_drift(drift("fraud"))).reason == "other_model"
    assert (await service.on_drift(drift(kind="data"))).reason == "kind"  # one drifting feature
    assert not bus.sent
    event = drift()
    assert (await service.on_drift(event)).go
    [(request, topic)] = bus.sent
    assert isinstance(request, TrainingRequested) and topic == "t.requests"
    assert request.payload.reason == "drift" and request.payload.trigger_event_id == str(event.event_id)
    assert request.causation_id == str(event.event_id) and request.payload.model_name == "credit"
    assert request.payload.window_start is None  # no drift_window_s: all the data
    decisions = service.state.recent_decisions(10)
    assert [(d["kind"], d["reason"]) for d in decisions] == [
        ("concept", "go"), ("data", "kind"), ("concept", "other_model")
    ]  # fmt: skip
    assert decisions[0]["request_id"] == str(request.event_id) and decisions[0]["go"] is True


async def test_a_redelivered_drift_event_is_decided_once(tmp_path: Path, features: pd.DataFrame) -> None:
    service, bus = make(tmp_path, features, GatePolicy(retrain_on_drift=True, retrain_cooldown_s=0))
    await labels_for(service, 60)
    event = drift()
    assert (await service.on_drift(event)).go
    assert (await service.on_drift(event)).reason == "duplicate"
    assert len(bus.sent) == 1 and len(service.state.recent_decisions(10)) == 1


async def test_cooldown_and_hourly_limit_count_the_persisted_decisions(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = GatePolicy(retrain_on_drift=True, retrain_cooldown_s=600, max_retrains_per_hour=2)
    service, bus = make(tmp_path, features, policy)
    await labels_for(service, 60)
    now = [T0]
    service.clock = lambda: now[0]
    assert (await service.on_drift(drift())).go
    now[0] += timedelta(seconds=599)
    assert (await service.on_drift(drift())).reason == "cooldown"
    restarted, _ = make(tmp_path, features, policy)  # the same state file: decisions survive
    restarted.clock = lambda: now[0]
    now[0] += timedelta(seconds=1)
    assert (await restarted.on_drift(drift())).go
    now[0] += timedelta(seconds=600)
    assert (await restarted.on_drift(drift())).reason == "hourly_limit"
    now[0] += timedelta(hours=1)
    assert (await restarted.on_drift(drift())).go
    assert len(bus.sent) == 1


async def test_new_labels_are_counted_since_the_last_run(tmp_path: Path, features: pd.DataFrame) -> None:
    policy = GatePolicy(retrain_on_drift=True, min_new_labels=10, retrain_cooldown_s=0)
    service, bus = make(tmp_path, features, policy)
    await labels_for(service, 12)
    service.state.save_run("earlier", "rejected", {"status": "rejected"})
    await labels_for(service, 9, prefix="new")
    decision = await service.on_drift(drift())
    assert decision.reason == "too_few_new_labels" and decision.detail.startswith("9 new labels")
    await labels_for(service, 1, prefix="newer")
    assert (await service.on_drift(drift())).go and len(bus.sent) == 1


async def test_the_drift_window_ends_open_before_the_newest_label(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features, GatePolicy(retrain_on_drift=True, drift_window_s=3600))
    await labels_for(service, 60)  # newest label at T0 + 59 min
    await service.on_drift(drift())
    [(request, _)] = bus.sent
    assert request.payload.window_start == T0 + timedelta(minutes=59) - timedelta(hours=1)
    assert request.payload.window_end is None


async def test_paused_stops_drift_retrains_only_and_survives_a_restart(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = GatePolicy(retrain_on_drift=True)
    service, bus = make(tmp_path, features, policy)
    await labels_for(service, 60)
    status = await service.set_paused(True, "ops:alice", "incident 42")
    assert (
        status["paused"] is True and status["changed_by"] == "ops:alice" and status["note"] == "incident 42"
    )
    restarted, bus = make(tmp_path, features, policy)
    assert (await restarted.on_drift(drift())).reason == "paused"
    manual = await restarted.request("ops:alice")  # a manual request is not paused
    assert [e for e, _ in bus.sent] == [manual]
    assert (await restarted.set_paused(False, "ops:bob"))["paused"] is False
    assert (await restarted.on_drift(drift())).go and len(bus.sent) == 2
    status = await restarted.retraining_status()
    assert status["policy"]["retrain_on_kinds"] == ("concept", "prediction", "performance")
    assert [d["reason"] for d in status["decisions"]] == ["go", "paused"]


SINCE_CHANGE = GatePolicy(
    retrain_on_drift=True, train_since_change=True, min_new_labels=10, retrain_cooldown_s=0, label_wait_s=600
)


def changed_at(at: datetime) -> DriftDetected:
    payload = DriftDetectedPayload(
        kind="concept", detector="CUSUM", statistic=13.0, window_start=at,
        window_end=at + timedelta(minutes=5), window_size=40, model_name="credit",
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def labels_from(service: TrainingService, start: datetime, n: int, prefix: str) -> None:
    for i in range(n):
        await service.on_label(label(f"{prefix}{i}", "bad", start + timedelta(seconds=i)))


async def test_a_retrain_waits_for_labels_since_the_change_point_then_trains_from_there(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    await labels_from(service, T0, 50, "old")  # the old world's labels do not count
    event = changed_at(change)
    decision = await service.on_drift(event)
    assert decision.reason == "waiting_for_labels" and decision.detail.startswith("0 new labels")
    await labels_from(service, change, 9, "new")
    assert not bus.sent
    status = await service.retraining_status()
    assert status["waiting"]["event_id"] == str(event.event_id) and status["waiting"]["labels"] == 9
    await labels_from(service, change + timedelta(minutes=1), 1, "newer")  # the tenth since the change
    [(request, _)] = bus.sent
    assert isinstance(request, TrainingRequested) and request.payload.reason == "drift"
    assert request.payload.window_start == change and request.payload.window_end is None
    assert request.causation_id == str(event.event_id)
    [decided] = service.state.recent_decisions(10)
    assert decided["reason"] == "go" and decided["request_id"] == str(request.event_id)
    assert (await service.retraining_status())["waiting"] is None
    await labels_from(service, change + timedelta(minutes=2), 20, "later")
    assert len(bus.sent) == 1  # decided once


async def test_a_waiting_retrain_survives_a_restart(tmp_path: Path, features: pd.DataFrame) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    await service.on_drift(changed_at(change))
    await labels_from(service, change, 6, "a")
    restarted, bus = make(tmp_path, features, SINCE_CHANGE)
    await labels_from(restarted, change, 3, "b")
    assert not bus.sent  # 9 so far: the count was rebuilt from the stored state
    await labels_from(restarted, change, 1, "c")
    assert bus.types() == ["TrainingRequested"]


async def test_a_newer_change_point_supersedes_and_a_long_wait_expires(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    now = [T0 + timedelta(days=1)]
    service.clock = lambda: now[0]
    first, second = changed_at(T0 + timedelta(hours=1)), changed_at(T0 + timedelta(hours=3))
    assert (await service.on_drift(first)).reason == "waiting_for_labels"
    assert (await service.on_drift(second)).reason == "waiting_for_labels"
    reasons = {d["event_id"]: d["reason"] for d in service.state.recent_decisions(10)}
    assert reasons == {str(first.event_id): "superseded", str(second.event_id): "waiting_for_labels"}
    now[0] += timedelta(seconds=601)  # longer than label_wait_s
    await labels_from(service, T0 + timedelta(hours=3), 1, "late")
    assert not bus.sent
    assert service.state.recent_decisions(1)[0]["reason"] == "expired"
    assert (await service.retraining_status())["waiting"] is None


async def test_a_retrain_since_a_change_is_followed_up_once_more_labels_came(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = SINCE_CHANGE.model_copy(update={"follow_up_labels": 25, "retrain_cooldown_s": 3600})
    service, bus = make(tmp_path, features, policy)
    change = T0 + timedelta(hours=2)
    event = changed_at(change)
    await service.on_drift(event)
    await labels_from(service, change, 10, "first")
    assert bus.types() == ["TrainingRequested"]  # the first retrain, on 10 labels
    assert (await service.retraining_status())["waiting"]["follow_up"] is True
    await labels_from(service, change + timedelta(minutes=1), 14, "more")
    assert len(bus.sent) == 1  # 24 since the change
    restarted, bus = make(tmp_path, features, policy)  # the follow-up survives a restart
    await labels_from(restarted, change + timedelta(minutes=2), 1, "last")
    [(follow_up, _)] = bus.sent  # not refused by the cool-down: part of the same drift's response
    assert follow_up.payload.window_start == change and follow_up.causation_id == str(event.event_id)
    decisions = {d["event_id"]: d for d in restarted.state.recent_decisions(10)}
    assert decisions[f"{event.event_id}/follow-up"]["go"] is True
    assert decisions[str(event.event_id)]["reason"] == "go"  # the first decision is kept
    await labels_from(restarted, change + timedelta(minutes=3), 30, "after")
    assert len(bus.sent) == 1 and (await restarted.retraining_status())["waiting"] is None


async def test_a_paused_follow_up_is_refused_and_recorded(tmp_path: Path, features: pd.DataFrame) -> None:
    policy = SINCE_CHANGE.model_copy(update={"follow_up_labels": 12})
    service, bus = make(tmp_path, features, policy)
    change = T0 + timedelta(hours=2)
    event = changed_at(change)
    await service.on_drift(event)
    await labels_from(service, change, 10, "first")
    await service.set_paused(True, "ops:alice", "investigating")
    await labels_from(service, change, 2, "more")
    assert bus.types() == ["TrainingRequested"]
    decision = {d["event_id"]: d for d in service.state.recent_decisions(10)}[f"{event.event_id}/follow-up"]
    assert decision["reason"] == "paused" and decision["go"] is False


async def test_a_drift_retrain_without_enough_evidence_runs_again_with_more_labels_then_gives_up(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = SINCE_CHANGE.model_copy(
        update={"follow_up_labels": 100, "evidence_retries": 1, "evidence_labels_factor": 1.5}
    )
    service, bus = make(tmp_path, features, policy)
    change = T0 + timedelta(hours=2)
    event = changed_at(change)
    await service.on_drift(event)
    await labels_from(service, change, 10, "first")
    [(first, _)] = bus.sent
    assert isinstance(first, TrainingRequested)
    decision = await service.retrains.on_inconclusive(first)  # as the run's verdict would ask
    assert decision is not None and decision.reason == "waiting_for_evidence"
    waiting = (await service.retraining_status())["waiting"]
    assert waiting["decision_id"] == f"{event.event_id}/evidence-1" and waiting["needed"] == 15
    assert waiting["then"]["event_id"] == str(event.event_id)  # the follow-up waits behind it
    await labels_from(service, change + timedelta(minutes=1), 4, "more")
    assert len(bus.sent) == 1  # 14 of 15
    await labels_from(service, change + timedelta(minutes=2), 1, "enough")
    retry = bus.sent[-1][0]
    assert isinstance(retry, TrainingRequested) and retry.payload.window_start == change
    assert retry.causation_id == str(first.event_id) and retry.correlation_id == first.correlation_id
    decisions = {d["event_id"]: d for d in service.state.recent_decisions(10)}
    assert decisions[f"{event.event_id}/evidence-1"]["go"] is True
    assert (await service.retraining_status())["waiting"]["event_id"] == str(event.event_id)  # follow-up back
    spent = await service.retrains.on_inconclusive(retry)
    assert spent is not None and spent.reason == "evidence_retries_spent"  # bounded by the policy
    manual = training_request(model="credit")
    assert await service.retrains.on_inconclusive(manual) is None  # a manual request just gets its verdict
