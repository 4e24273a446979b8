"""The audit reads every topic it captures with ONE consumer (one group, one batch subscriber), and a
batch that mixes topics is captured row by row with each record's own topic and coordinates."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord
from faststream.kafka import TestKafkaBroker

from contracts.registry import encode_event
from contracts.samples import sample_events
from contracts.topics import AUDIT_CHECKPOINTS, topic_names
from services.audit.adapters.query import EventQuery
from services.audit.app import create_app
from services.audit.settings import AuditSettings
from tests.unit.test_audit_support import new_store


def record(topic: str, partition: int, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=partition, offset=offset, timestamp=1_700_000_000_000 + offset,
        timestamp_type=0, key=None, value=value, checksum=None, serialized_key_size=-1,
        serialized_value_size=len(value), headers=(),
    )  # fmt: skip


def test_one_consumer_in_one_group_reads_every_captured_topic(tmp_path: Path) -> None:
    settings = AuditSettings(state_dir=tmp_path)
    app = create_app(settings, store=new_store(tmp_path))
    [subscription] = app.state.subscriptions.registered
    assert subscription.topics == tuple(topic_names()) and AUDIT_CHECKPOINTS in subscription.topics
    assert subscription.group_id == settings.consumer_group == "audit" and subscription.batch
    [subscriber] = app.state.broker.subscribers  # one FastStream subscriber: one aiokafka consumer
    assert subscriber is subscription.subscriber and subscriber.group_id == "audit"
    assert subscriber.topic_names == list(topic_names()) and subscriber.max_records == settings.batch_records
    # verify reads the committed offsets of every captured topic from that one group
    assert settings.capture_groups() == dict.fromkeys(topic_names(), "audit")


async def test_a_batch_that_mixes_topics_keeps_each_rows_topic(tmp_path: Path) -> None:
    topics = ["t.events", "t.raw", "t.other"]
    settings = AuditSettings(
        state_dir=tmp_path, topics=topics, content_free_topics=["t.raw"], checkpoint_every_events=1000
    )
    store = new_store(tmp_path)
    app = create_app(settings, store=store)
    events = sample_events()[:3]
    batch = [
        record("t.events", 2, 10, encode_event(events[0])),
        record("t.raw", 0, 7, b'{"amount": 12}'),
        record("t.other", 0, 0, encode_event(events[1])),
        record("t.events", 0, 3, encode_event(events[2])),
        record("t.raw", 0, 7, b'{"amount": 12}'),  # the same coordinates again: stored once
    ]
    [subscriber] = app.state.broker.subscribers
    async with TestKafkaBroker(app.state.broker):
        await subscriber.process_message(batch)
    rows = store.events(EventQuery(limit=10))
    assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == [
        ("t.events", 2, 10), ("t.raw", 0, 7), ("t.other", 0, 0), ("t.events", 0, 3)
    ]  # fmt: skip
    assert [r["event_id"] for r in rows if r["kind"] == "event"] == [str(e.event_id) for e in events]
    [raw] = [r for r in rows if r["topic"] == "t.raw"]
    assert raw["kind"] == "raw" and raw["body"] is None  # the content-free topic stays content-free
