"""The kit's metrics: consumer lag from what the consumers know, and /metrics as Prometheus scrapes it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from servicekit.app import create_service_app
from servicekit.auth import Role, write_dev_keys
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscription, Subscriptions
from tests.support import probe_settings


@dataclass
class FakeConsumer:
    """The three things `record_lag` reads from an aiokafka consumer."""

    highwaters: dict[TopicPartition, int | None]
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.highwaters)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


@dataclass
class FakeSubscriber:
    consumer: FakeConsumer | None


def lag(topic: str, partition: int, service: str = "lagprobe") -> float | None:
    labels = {"service": service, "group": "g", "topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value("mlops_consumer_lag", labels)


def subscriptions_with(consumer: FakeConsumer | None) -> Subscriptions:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "lagprobe"), "lagprobe")
    subs.registered.append(
        Subscription(("t.lag",), "g", (), batch=False, subscriber=FakeSubscriber(consumer))
    )
    return subs


async def test_lag_is_highwater_minus_position_per_assigned_partition() -> None:
    p0, p1, p2 = (TopicPartition("t.lag", p) for p in range(3))
    consumer = FakeConsumer({p0: 120, p1: 7, p2: None}, {p0: 100, p1: 7})
    subs = subscriptions_with(consumer)
    await subs.record_lag()
    assert lag("t.lag", 0) == 20 and lag("t.lag", 1) == 0
    assert lag("t.lag", 2) is None  # nothing fetched from it yet: no guess

    del consumer.highwaters[p0]  # revoked by a rebalance: its series goes away
    await subs.record_lag()
    assert lag("t.lag", 0) is None and lag("t.lag", 1) == 0


async def test_a_consumer_not_started_yet_records_nothing() -> None:
    subs = subscriptions_with(None)
    await subs.record_lag()
    assert lag("t.lag", 0) is None


def test_metrics_accept_the_ops_key_as_a_bearer_token_as_prometheus_sends_it(tmp_path: Path) -> None:
    _, hashed = write_dev_keys(tmp_path, [("ops", Role.OPS), ("client", Role.CLIENT)])
    plain = json.loads((tmp_path / "api-keys.json").read_text())
    keys = {name: entry["key"] for name, entry in plain.items()}
    app = create_service_app(probe_settings("127.0.0.1:1", api_keys_file=hashed), None, title="probe")
    with TestClient(app) as client:
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {keys['ops']}"})
        refused = client.get("/metrics", headers={"Authorization": f"Bearer {keys['client']}"})
    assert ok.status_code == 200 and "mlops_consumer_lag" in ok.text
    assert refused.status_code == 403
