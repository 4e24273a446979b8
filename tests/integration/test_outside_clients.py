"""Any Kafka client can use the local broker: kcat (librdkafka, from Debian) in both directions."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

from contracts.events import TrainingRequested
from contracts.registry import encode_event
from servicekit.consumer import RawMessage
from tests.integration.test_event_bus import kit
from tests.support import create_topic, training_request, wait_until


def kcat(*args: str, stdin: bytes | None = None) -> bytes:
    binary = shutil.which("kcat")
    assert binary, "kcat must be installed (scripts/install-test-tools.sh does it)"
    return subprocess.run([binary, *args], input=stdin, capture_output=True, check=True, timeout=60).stdout


async def test_kcat_produces_to_our_consumer(kafka_bootstrap: str, unique_topic: str) -> None:
    await create_topic(kafka_bootstrap, unique_topic, partitions=3)
    subs = kit(kafka_bootstrap)
    got: list[RawMessage] = []

    async def keep(raws: list[RawMessage]) -> None:
        got.extend(raws)

    subs.on_raw(unique_topic, group_id=f"g-{uuid.uuid4()}")(keep)
    lines = b"".join(f"app-{i}:{json.dumps({'amount': i})}\n".encode() for i in range(10))
    kcat("-P", "-b", kafka_bootstrap, "-t", unique_topic, "-K", ":", stdin=lines)
    async with subs.broker:
        await subs.broker.start()
        await wait_until(lambda: len(got) == 10, what="10 kcat records")
    assert sorted(json.loads(r.value or b"")["amount"] for r in got) == list(range(10))
    assert {r.key for r in got} == {f"app-{i}".encode() for i in range(10)}


async def test_kcat_consumes_our_events(kafka_bootstrap: str, unique_topic: str) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    sent = training_request()
    async with subs.broker:
        await subs.broker.connect()
        await subs.publisher.publish(sent, topic=unique_topic)
    out = kcat("-C", "-b", kafka_bootstrap, "-t", unique_topic, "-o", "beginning", "-e", "-c", "1", "-q")
    assert out.strip() == encode_event(sent)
    assert TrainingRequested.model_validate_json(out).event_id == sent.event_id
