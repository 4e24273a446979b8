"""The audit service's capture path on the real broker: several topics, raw records kept without their
content, undecodable messages recorded, redelivered event ids appended once, checkpoints published."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from contracts.events import RecordCleaned
from contracts.registry import encode_event
from contracts.samples import sample_events, sample_payloads
from services.audit.adapters.checkpoints import read_checkpoints
from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import SqlAuditStore
from services.audit.app import create_app
from services.audit.lineage import lineage
from services.audit.settings import AuditSettings
from tests.support import create_topic, wait_until
from tests.unit.test_audit_support import lineage_flow

PII = b'{"name": "Alice Martin", "email": "alice@example.com", "ssn": "123-45-6789"}'


async def test_capture_from_several_topics_once_each_with_checkpoints(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    events_topic, flow_topic, raw_topic, checkpoints = (
        f"test.audit.{run}.{n}" for n in ("ev", "flow", "raw", "cp")
    )
    for topic, partitions in ((events_topic, 3), (flow_topic, 1), (raw_topic, 3), (checkpoints, 1)):
        await create_topic(kafka_bootstrap, topic, partitions)
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=tmp_path,
        topics=[events_topic, flow_topic, raw_topic],
        content_free_topics=[raw_topic],
        group_id=f"audit-{run}",
        checkpoint_topic=checkpoints,
        checkpoint_interval_s=0.2,
        checkpoint_every_events=5,
    )
    app = create_app(settings)
    store: SqlAuditStore = app.state.audit.store
    samples, flow = sample_events(), lineage_flow(prediction_id=f"pred-{run}")
    total = len(samples) + len(flow) + 3  # + the sentinel, the raw record and the undecodable one
    sentinel = RecordCleaned.create(
        sample_payloads()[RecordCleaned], producer="tests"
    )  # same key as samples[0]

    async with app.router.lifespan_context(app):
        broker, publisher = app.state.broker, app.state.subscriptions.publisher
        for event in samples:
            await publisher.publish(event, topic=events_topic)
        for event in flow:
            await publisher.publish(event, topic=flow_topic)
        await broker.publish(PII, raw_topic, key=b"alice@example.com")
        await broker.publish(b"\xff\xfe not json", flow_topic)
        # The same event again (a producer retry): same key, so same partition, before the sentinel.
        await broker.publish(encode_event(samples[0]), events_topic, key=samples[0].key())
        await publisher.publish(sentinel, topic=events_topic)
        await wait_until(
            lambda: store.first(event_id=str(sentinel.event_id)) is not None, what="the sentinel"
        )
        await wait_until(lambda: store.head()[0].length == total, what=f"all {total} rows")
        chain_id = app.state.audit.chain_id()
        await wait_until(
            lambda: store.head()[0].length == total and not app.state.audit.appended_since_checkpoint
        )
        anchors = await read_checkpoints(kafka_bootstrap, checkpoints, chain_id)
        while total not in anchors:
            anchors = await read_checkpoints(kafka_bootstrap, checkpoints, chain_id)

    rows = store.events(EventQuery(limit=100))
    assert len(rows) == total and [r["seq"] for r in rows] == list(range(1, total + 1))
    assert sorted(r["event_id"] for r in rows if r["kind"] == "event") == sorted(
        str(e.event_id) for e in [*samples, *flow, sentinel]
    )  # the republished event is in once
    [raw] = [r for r in rows if r["kind"] == "raw"]
    assert raw["body"] is None and raw["value_sha256"] == hashlib.sha256(PII).hexdigest()
    # The raw key is taken as the subject's id: only its keyed reference is kept, no guessable digest.
    assert raw["key_sha256"] is None and raw["size"] == len(PII)
    assert store.subject_keys is not None and raw["entity_id"] == store.subject_keys.ref("alice@example.com")
    [garbage] = [r for r in rows if r["kind"] == "undecodable"]
    assert garbage["topic"] == flow_topic and garbage["note"] == "not_utf8"
    for path in tmp_path.rglob("audit.db*"):  # the database, its WAL and shared memory
        content = path.read_bytes()
        assert (
            b"alice@example.com" not in content and b"123-45-6789" not in content and b"Alice" not in content
        )

    assert lineage(store, f"pred-{run}")["missing"] == []
    report = app.state.audit.verify(anchors)
    assert report.ok and report.checked == total and report.anchors_checked >= 1
