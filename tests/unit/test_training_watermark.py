"""The label watermark with fakes: a request carries the labels topic's end offsets, a run waits until
the labels up to them are stored and then learns from all of them, a wait that passes its bound says so
in the run's lineage, and a drift retrain from a change point becomes the last change acted on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    LabelObserved,
    LabelObservedPayload,
    TrainingRequested,
)
from services.training.adapters.state import TrainingState
from services.training.domain.policy import GatePolicy
from services.training.handlers import Topics, TrainingService
from services.training.trainer import Trainer
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame, label_events

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 300
SINCE_CHANGE = GatePolicy(
    retrain_on_drift=True, train_since_change=True, min_new_labels=10, retrain_cooldown_s=0, label_wait_s=600
)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(N)


def make(
    tmp_path: Path, features: pd.DataFrame, ends: dict[int, int] | None, policy: GatePolicy | None = None
) -> tuple[TrainingService, list[Event[Any]]]:
    policy = policy or GatePolicy()
    sent: list[Event[Any]] = []

    async def publish(event: Event[Any], topic: str) -> None:
        sent.append(event)

    async def watermark() -> dict[int, int]:
        if ends is None:
            raise ConnectionError("broker away")
        return dict(ends)

    state = TrainingState(tmp_path / "state.db")
    trainer = Trainer(state, FakeSource(features), FakeRegistry(), lambda: policy, "code")
    service = TrainingService(
        trainer,
        state,
        publish,
        Topics("t.requests", "t.trained", "t.promoted", "t.rejected"),
        "credit",
        "loan_applications",
        lambda: policy,
        label_watermark=watermark,
    )
    return service, sent


def labels(features: pd.DataFrame) -> list[LabelObserved]:
    return label_events(features, timedelta(seconds=5))


async def consume(service: TrainingService, events: list[LabelObserved], partitions: int, batch: int) -> None:
    """What the labels subscriber does: store a batch, then record its coordinates as consumed. Labels
    are spread over partitions round-robin; offsets count per partition."""
    placed = [(i % partitions, i // partitions, event) for i, event in enumerate(events)]
    for first in range(0, len(placed), batch):
        chunk = placed[first : first + batch]
        await service.on_labels([event for _, _, event in chunk])
        service.labels_consumed.record(
            KafkaCoordinates(topic="labels", partition=p, offset=o) for p, o, _ in chunk
        )
        await asyncio.sleep(0)  # the labels consumer is slow: the run is free to go ahead meanwhile


async def test_a_run_waits_for_every_label_published_before_its_request(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    ends = {0: N // 2, 1: N // 2}  # every label is on the topic when training is asked for
    service, sent = make(tmp_path, features, ends)
    request = await service.request("ops:tests")
    assert request.payload.labels_watermark == {"0": N // 2, "1": N // 2} and sent == [request]
    run = asyncio.create_task(service.on_training_requested(request))
    await asyncio.sleep(0)
    assert service.state.label_count() == 0 and not run.done()  # nothing stored yet: the run waits
    await consume(service, labels(features), partitions=2, batch=25)
    outcome = await run
    assert outcome is not None and outcome.counts["labels_requested"] == N
    watermark = outcome.lineage["labels_watermark"]
    assert watermark["reached"] is True and watermark["watermark"] == {"0": N // 2, "1": N // 2}
    assert service.state.latest_run()["lineage"]["labels_watermark"]["partitions_short"] == 0  # type: ignore[index]


async def test_a_wait_past_its_bound_goes_ahead_and_says_how_short_it_was(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, _ = make(tmp_path, features, {0: N, 1: 40})
    service.watermark_wait_s = 0.0
    await consume(service, labels(features)[: N - 50], partitions=1, batch=100)  # partition 1 never comes
    request = await service.request("ops:tests")
    outcome = await service.on_training_requested(request)
    assert outcome is not None and outcome.counts["labels_requested"] == N - 50
    watermark = outcome.lineage["labels_watermark"]
    assert watermark["reached"] is False and watermark["partitions_short"] == 2
    assert watermark["records_short"] == 50 + 40


async def test_without_a_watermark_a_run_does_not_wait_and_its_lineage_says_so(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, _ = make(tmp_path, features, None)  # the broker did not answer the end offsets
    await consume(service, labels(features), partitions=1, batch=N)
    request = await service.request("ops:tests")
    assert request.payload.labels_watermark is None  # published anyway
    outcome = await service.on_training_requested(request)
    assert outcome is not None and outcome.lineage["labels_watermark"] == {"watermark": None}


def drift_at(change: datetime) -> DriftDetected:
    payload = DriftDetectedPayload(
        kind="concept", detector="CUSUM", statistic=13.0, window_start=change,
        window_end=change + timedelta(minutes=5), window_size=40, model_name="credit",
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def test_a_drift_retrain_from_its_change_point_is_the_last_change_acted_on(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, sent = make(tmp_path, features, {0: 0}, SINCE_CHANGE)
    assert service.state.last_change_point() is None
    first, later = drift_at(T0 + timedelta(hours=2)), drift_at(T0 + timedelta(hours=5))
    await service.request("training", "drift", (T0, None), caused_by=first)  # the last hour, not the change
    assert service.state.last_change_point() is None
    await service.request("training", "drift", (first.payload.window_start, None), caused_by=first)
    await service.request("training", "drift", (later.payload.window_start, None), caused_by=later)
    await service.request("training", "drift", (first.payload.window_start, None), caused_by=first)  # late
    change = service.state.last_change_point()
    assert change is not None and change.at == later.payload.window_start
    assert change.drift_event_id == str(later.event_id) and len(sent) == 4


async def test_the_retrain_policy_records_the_change_it_acted_on(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, sent = make(tmp_path, features, {0: 12}, SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    event = drift_at(change)
    await service.on_drift(event)  # waits for 10 labels since the change
    await service.on_labels(
        [
            LabelObserved.create(
                LabelObservedPayload(
                    dataset="loan_applications",
                    entity_id=f"n{i}",
                    label="bad",
                    event_time=change + timedelta(seconds=i),
                ),
                producer="tests",
            )
            for i in range(10)
        ]
    )
    [request] = sent
    assert request.payload.reason == "drift" and request.payload.labels_watermark == {"0": 12}
    acted = service.state.last_change_point()
    assert acted is not None and acted.at == change and acted.drift_event_id == str(event.event_id)


async def test_a_careless_watermark_neither_breaks_the_run_nor_blocks_it_past_the_bound(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, _ = make(tmp_path, features, {0: 0})
    service.watermark_wait_s = 0.0
    await consume(service, labels(features), partitions=1, batch=N)
    hostile = {"x": 5, "-1": 3, "٣": 2, "0": 10**15, "7": -4}  # not partitions, unreachable, negative
    payload = (await service.request("ops:tests")).payload.model_copy(update={"labels_watermark": hostile})
    request = TrainingRequested.create(payload, producer="someone careless")
    outcome = await service.on_training_requested(request)
    assert outcome is not None and outcome.counts["labels_requested"] == N
    watermark = outcome.lineage["labels_watermark"]
    assert watermark["reached"] is False and watermark["partitions_short"] == 1
    assert set(watermark["watermark"]) == {"0", "7"}
