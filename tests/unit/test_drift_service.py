"""The drift service's use cases with its real SQLite store and a fake publisher: a shift raises
one DriftDetected with its evidence, a restart (a new service on the same file) loses no detector
or join state and skips redelivered offsets, a failed publish waits in the outbox, garbage is
rejected, and GET /detectors is for ops only."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from contracts.common import ContractError, KafkaCoordinates
from contracts.events import (
    DriftDetected,
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
    PredictionMadePayload,
    RecordCleaned,
    RecordCleanedPayload,
)
from contracts.registry import encode_event
from servicekit.auth import Role, write_dev_keys
from servicekit.consumer import RawMessage
from services.drift.adapters.store import DriftStore
from services.drift.app import create_app
from services.drift.domain.watch import WatchConfig
from services.drift.handlers import DriftService
from services.drift.settings import DriftSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = WatchConfig(("amount",), ("kind",), warm_up=0, cooldown=100_000)


def record(i: int, shifted: bool, rng: random.Random) -> RecordCleaned:
    amount = rng.gauss(300.0 if shifted else 100.0, 20.0)
    payload = RecordCleanedPayload(
        dataset="loan_applications",
        entity_id=f"e{i}",
        event_time=T0 + timedelta(seconds=i),
        record={"amount": amount, "kind": rng.choice("ab")},
        source=KafkaCoordinates(topic="records.raw", partition=0, offset=i),
        scrubbed_fields=[],
    )
    return RecordCleaned.create(payload, producer="ingest")


def made(
    i: int,
    decision: str = "approve",
    version: str = "3",
    score: float = 0.2,
    probability: float | None = None,
) -> PredictionMade:
    payload = PredictionMadePayload(
        probability=probability,
        prediction_id=f"p{i}",
        entity_id=f"e{i}",
        model_name="credit",
        model_version=version,
        score=score,
        decision=decision,
        features={},
        latency_ms=1.0,
    )
    return PredictionMade.create(payload, producer="serving")


def label(i: int, value: str, by_prediction: bool = True) -> LabelObserved:
    payload = LabelObservedPayload(
        dataset="loan_applications",
        entity_id=f"e{i}",
        label=value,
        event_time=T0 + timedelta(seconds=i + 60),
        prediction_id=f"p{i}" if by_prediction else None,
    )
    return LabelObserved.create(payload, producer="labels")


def raws(topic: str, events: list[Any], first_offset: int = 0) -> list[RawMessage]:
    return [
        RawMessage(
            KafkaCoordinates(topic=topic, partition=0, offset=first_offset + n), None, encode_event(e), 0
        )
        for n, e in enumerate(events)
    ]


class Harness:
    def __init__(self, path: Path) -> None:
        self.sent: list[DriftDetected] = []
        self.rejected: list[str] = []
        self.fail_publish = False
        self.store = DriftStore(path)
        self.service = DriftService(
            self.store,
            CONFIG,
            publish=self.publish,
            reject=self.reject,
            dataset="loan_applications",
            model_name="credit",
        )

    async def publish(self, body: bytes) -> None:
        if self.fail_publish:
            raise ConnectionError("broker away")
        self.sent.append(DriftDetected.model_validate_json(body))

    async def reject(self, raw: RawMessage, err: ContractError) -> None:
        self.rejected.append(err.code)


async def feed_records(h: Harness, n: int, shift_at: int, start: int = 0, seed: int = 5) -> None:
    rng = random.Random(seed)
    events = [record(i, i >= shift_at, rng) for i in range(start, start + n)]
    for b in range(0, n, 100):
        await h.service.on_streams(raws("records.clean", events[b : b + 100], start + b))


async def test_a_shift_raises_one_drift_event_with_its_evidence(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    alarms = {"kind": "data", "detector": "RankCusum"}
    before = REGISTRY.get_sample_value("drift_alarms_total", alarms) or 0.0
    await feed_records(h, 3000, shift_at=2000)
    assert len(h.sent) == 1
    assert REGISTRY.get_sample_value("drift_alarms_total", alarms) == before + 1  # ops see it too
    event = h.sent[0].payload
    assert (event.kind, event.feature, event.detector, event.model_name) == (
        "data",
        "amount",
        "RankCusum",
        "credit",
    )
    assert event.statistic > event.threshold  # type: ignore[operator]
    # the CUSUM's run since it left zero: its change-point estimate (the shift is 10 sd: a few rows)
    assert 1 <= event.window_size <= 20
    assert event.arl0 == CONFIG.feature_arl0 == 200_000  # 2 features, 1 false alarm per 100k rows
    assert event.meaning is not None and "ARL0" in event.meaning
    assert event.last_source is not None and event.first_source is not None
    assert 2000 <= event.last_source.offset <= 2000 + 300
    assert event.first_source.offset <= event.last_source.offset - event.window_size + 1
    assert event.window_start <= event.window_end


async def test_a_stationary_stream_of_the_same_length_raises_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    await feed_records(h, 3000, shift_at=10**9)
    assert h.sent == []


@pytest.mark.parametrize("shift", [True, False])
async def test_prediction_drift_on_the_scores_and_a_new_version_restarts_it(
    tmp_path: Path, shift: bool
) -> None:
    h = Harness(tmp_path / "drift.db")
    rng = random.Random(3)
    scores = [rng.betavariate(2, 8) + (0.3 if shift and i >= 2000 else 0.0) for i in range(3000)]
    events = [made(i, score=s) for i, s in enumerate(scores)]
    for b in range(0, 3000, 250):
        await h.service.on_streams(raws("predictions.made", events[b : b + 250], b))
    found = [(e.payload.kind, e.payload.model_version) for e in h.sent if e.payload.kind != "performance"]
    assert found == ([("prediction", "3")] if shift else [])
    # Every decision here approves: scores 0.3 higher also mean an accuracy estimated 0.3 lower.
    estimated = [e for e in h.sent if e.payload.kind == "performance"]
    assert len(estimated) == (1 if shift else 0)
    if shift:
        assert h.sent[0].payload.last_source.offset >= 2000  # type: ignore[union-attr]
    await h.service.on_streams(raws("predictions.made", [made(5000, version="4")], 3000))
    assert h.service.watch.monitors["prediction:credit"].n == 1  # a new model: a new baseline


async def test_a_restart_keeps_detectors_and_join_and_skips_redelivered_offsets(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    await feed_records(h, 2000, shift_at=10**9)  # reference learnt, window full
    await h.service.on_streams(raws("predictions.made", [made(i) for i in range(10)]))
    h.store.close()

    again = Harness(tmp_path / "drift.db")  # the restarted service
    watch = again.service.watch
    assert watch.monitors["data:amount"].n == 2000 and watch.versions == {"credit": "3"}
    assert len(watch.join.predictions) == 10 and watch.join.by_entity["e4"] == "p4"
    await feed_records(again, 500, shift_at=10**9, start=1500)  # redelivered: skipped
    assert watch.monitors["data:amount"].n == 2000
    await feed_records(again, 600, shift_at=2000, start=2000)  # the shift, right after the restart
    assert [e.payload.feature for e in again.sent] == ["amount"]
    await again.service.on_streams(raws("labels.observed", [label(i, "bad", i % 2 == 0) for i in range(10)]))
    assert watch.join.joined == 10 and watch.monitors["concept:credit"].n == 10
    assert again.store.pending_rows() == 0


async def test_an_event_that_could_not_be_published_waits_in_the_outbox(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    await feed_records(h, 1900, shift_at=10**9)
    h.fail_publish = True
    with pytest.raises(ConnectionError):
        await feed_records(h, 600, shift_at=0, start=1900)
    assert h.sent == [] and len(h.store.outbox()) == 1
    h.store.close()
    again = Harness(tmp_path / "drift.db")
    await again.service.flush_outbox()
    assert len(again.sent) == 1 and again.store.outbox() == []


async def test_garbage_is_rejected_and_the_rest_of_the_batch_is_used(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    batch = raws("predictions.made", [made(1), made(2)])
    bad = RawMessage(KafkaCoordinates(topic="predictions.made", partition=0, offset=2), None, b"{", 0)
    other = raws("predictions.made", [label(3, "bad")], 3)
    await h.service.on_streams([*batch, bad, *other])
    assert h.rejected == ["not_json", "unexpected_event_type"]
    assert len(h.service.watch.join.predictions) == 2


def test_detectors_route_is_for_ops(tmp_path: Path) -> None:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    keys = {
        v["role"]: v["key"] for v in json.loads((tmp_path / "secrets" / "api-keys.json").read_text()).values()
    }
    settings = DriftSettings(api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path)
    client = TestClient(create_app(settings))  # no lifespan: no broker
    assert client.get("/detectors").status_code == 401
    assert client.get("/detectors", headers={"X-API-Key": keys["client"]}).status_code == 403
    body = client.get("/detectors", headers={"X-API-Key": keys["ops"]}).json()
    assert "data:credit_amount" in body["monitors"] and body["join"]["pending_predictions"] == 0
    one = client.get("/detectors/data:purpose", headers={"X-API-Key": keys["ops"]})
    assert one.status_code == 200 and one.json()["detector"] == "ChiSquare"
    assert client.get("/detectors/nope", headers={"X-API-Key": keys["ops"]}).status_code == 404


async def test_online_quality_per_version_reaches_metrics_and_detectors_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """Issue 17, item 4: the label join feeds each version's rolling accuracy, AUC and calibration;
    an older version's labels still count for that version (not for the concept monitor)."""
    from prometheus_client import REGISTRY

    h = Harness(tmp_path / "drift.db")
    # version 3: 40 predictions, a score that ranks perfectly, decisions right 20 times out of 40
    preds = [
        made(i, "decline" if i < 10 or 20 <= i < 30 else "approve", "3", 0.9 if i < 20 else 0.1)
        for i in range(40)
    ]
    await h.service.on_streams(raws("predictions.made", preds))
    await h.service.on_streams(
        raws("labels.observed", [label(i, "bad" if i < 20 else "good") for i in range(40)])
    )
    quality = h.service.detectors()["online_quality"]
    assert quality == [
        {"model": "credit", "version": "3", "labelled": 40.0, "accuracy": 0.5, "auc": 1.0,
         "brier": pytest.approx(0.01), "calibration_error": pytest.approx(0.1)}
    ]  # fmt: skip

    def gauge(measure: str, version: str = "3") -> float | None:
        labels = {"model": "credit", "version": version, "measure": measure}
        return REGISTRY.get_sample_value("drift_model_online_quality", labels)

    assert gauge("accuracy") == 0.5 and gauge("auc") == 1.0 and gauge("labelled") == 40.0
    h.store.close()

    again = Harness(tmp_path / "drift.db")  # restarted: the window is kept
    await again.service.on_streams(raws("predictions.made", [made(100, "decline", "4", 0.8)], 1000))
    await again.service.on_streams(raws("labels.observed", [label(100, "bad"), label(41, "bad")], 1000))
    by_version = {q["version"]: q for q in again.service.detectors()["online_quality"]}
    assert by_version["3"]["labelled"] == 40.0  # label 41 has no prediction: nothing joined
    assert by_version["4"]["labelled"] == 1.0 and by_version["4"]["auc"] is None  # one class only
    assert gauge("accuracy", "4") == 1.0
