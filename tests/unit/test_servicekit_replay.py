"""The replay flag of the kit (servicekit/replay.py): a service whose settings carry a replay plan gets a
broker that withholds what it would publish and a consumer that drops records past the window's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from contracts.common import KafkaCoordinates
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage
from servicekit.replay import ReplayBroker, ReplayPlan, keep_in_window, withholds
from tests.support import probe_settings, training_request

PLAN = {"group": "replay-1", "stop_offsets": {"t.clean": {"0": 10, "1": 0}}}


def raw(topic: str, partition: int, offset: int) -> RawMessage:
    return RawMessage(KafkaCoordinates(topic=topic, partition=partition, offset=offset), None, b"{}", 0)


def test_the_window_ends_before_the_captured_end_offset_and_names_its_partitions() -> None:
    plan = ReplayPlan.model_validate(PLAN)
    inside = [raw("t.clean", 0, 0), raw("t.clean", 0, 9)]
    outside = [raw("t.clean", 0, 10), raw("t.clean", 1, 0), raw("t.clean", 2, 0), raw("t.other", 0, 0)]
    assert [plan.within(r.source) for r in inside + outside] == [True, True] + [False] * 4


def test_the_plan_comes_from_one_setting_and_makes_the_replay_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_REPLAY", json.dumps(PLAN))
    settings = probe_settings("127.0.0.1:1")
    assert settings.replay is not None and settings.replay.stop_offsets == {"t.clean": {0: 10, 1: 0}}
    assert isinstance(make_broker(settings), ReplayBroker)
    monkeypatch.delenv("MLOPS_REPLAY")
    assert type(make_broker(probe_settings("127.0.0.1:1"))) is KafkaBroker


async def test_a_replay_publishes_nothing_and_reports_what_it_withheld(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    plan = ReplayPlan.model_validate({**PLAN, "report": str(report)})
    broker = make_broker(probe_settings("127.0.0.1:1", replay=plan))  # nothing listens there
    publisher = EventPublisher(broker, "probe")
    for _ in range(3):
        await publisher.publish(training_request(), topic="t.requests")
    await publisher.publish(training_request())
    assert isinstance(broker, ReplayBroker)
    broker.write_report()
    assert json.loads(report.read_text())["withheld"] == {"t.requests": 3, "training.requested": 1}


async def test_withheld_events_are_counted_as_withheld_not_as_published() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1", replay=ReplayPlan.model_validate(PLAN)))
    publisher = EventPublisher(broker, "probe-withheld")
    for _ in range(2):
        await publisher.publish(training_request(), topic="t.requests")
    labels = {"service": "probe-withheld", "topic": "t.requests"}
    assert REGISTRY.get_sample_value("mlops_events_withheld_total", labels) == 2
    assert REGISTRY.get_sample_value("mlops_events_published_total", labels) is None


def test_only_a_replay_without_publish_withholds() -> None:
    publishing = ReplayPlan.model_validate({**PLAN, "publish": True})
    assert withholds(make_broker(probe_settings("127.0.0.1:1", replay=ReplayPlan.model_validate(PLAN))))
    assert not withholds(make_broker(probe_settings("127.0.0.1:1", replay=publishing)))
    assert not withholds(make_broker(probe_settings("127.0.0.1:1")))


def test_records_past_the_window_are_dropped_and_counted_only_in_a_replay() -> None:
    batch = [raw("t.clean", 0, 8), raw("t.clean", 0, 9), raw("t.clean", 0, 10), raw("t.clean", 1, 0)]
    plain = KafkaBroker("127.0.0.1:1")
    assert keep_in_window(plain, batch, lambda r: r) == batch
    replaying = make_broker(probe_settings("127.0.0.1:1", replay=ReplayPlan.model_validate(PLAN)))
    assert isinstance(replaying, ReplayBroker)
    assert keep_in_window(replaying, batch, lambda r: r) == batch[:2]
    assert replaying.beyond_window == 2


async def test_a_withheld_dead_letter_is_not_counted_as_dead_lettered() -> None:
    from servicekit.deadletters import DeadLetters

    broker = make_broker(probe_settings("127.0.0.1:1", replay=ReplayPlan.model_validate(PLAN)))
    letters = DeadLetters(EventPublisher(broker, "probe-dl"), "probe-dl")
    await letters.send(raw("t.clean", 0, 3), "not_json", "not JSON", [])
    labels = {"service": "probe-dl", "topic": "t.clean", "code": "not_json"}
    assert REGISTRY.get_sample_value("mlops_dead_letters_total", labels) in (None, 0.0)
    assert isinstance(broker, ReplayBroker) and broker.withheld["platform.deadletters"] == 1
