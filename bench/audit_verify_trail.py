"""What verifying against anchors outside the database costs: the chain alone (`verify_store`) against
the whole trail (`verify_trail`: guards, signed checkpoints read back from Kafka, every row's digest
against the Kafka record at its coordinates, committed offsets), on the same store.

`--events` PredictionMade events are produced to a fresh 3-partition topic; the audit store captures
exactly those records (their real coordinates) in batches of 2,000; one signed checkpoint is published.
Unless `--bootstrap` is given, the broker is a private LocalKafka on `--port` (default 19892) in a temp
folder.
Medians over `--runs`. Nothing here asserts on timings.

    .venv/bin/python -m bench.audit_verify_trail --events 100000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import bench_kafka
from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from infra.topics import TopicPlan, ensure_topics_async
from services.audit.adapters.kafka_log import KafkaLog
from services.audit.adapters.store import SqlAuditStore
from services.audit.adapters.subject_keys import SubjectKeys
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.signing import CheckpointSigner, TrustedKeys
from services.audit.verification import TrailPolicy, verify_store, verify_trail

RESULTS = Path(__file__).parent / "results" / "audit_verify_trail.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bootstrap", help="use this broker instead of a private one")
    p.add_argument("--port", type=int, default=19892, help="port of the private broker (controller: +1)")
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args()


async def produce(bootstrap: str, topic: str, events: int) -> list[Captured]:
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    try:
        futures, values = [], []
        for i in range(events):
            event = PredictionMade.create(
                PredictionMadePayload(
                    prediction_id=f"p-{i}", entity_id=f"c-{i % 97}", model_name="fraud", model_version="3",
                    score=0.5, decision="approve", features={"x": i}, latency_ms=1.0,
                ),
                producer="bench",
            )  # fmt: skip
            values.append((event.key(), encode_event(event)))
            futures.append(await producer.send(topic, values[-1][1], key=values[-1][0]))
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Captured(topic, m.partition, m.offset, m.timestamp, k, v)
        for m, (k, v) in zip(sent, values, strict=True)
    ]


def build(bootstrap: str, folder: Path, events: int) -> tuple[SqlAuditStore, TrailPolicy]:
    run = uuid.uuid4().hex[:8]
    topic, checkpoints = f"bench.audit.{run}", f"bench.audit.{run}.cp"
    asyncio.run(ensure_topics_async(bootstrap, [TopicPlan(topic, 3), TopicPlan(checkpoints, 1)]))
    messages = sorted(asyncio.run(produce(bootstrap, topic, events)), key=lambda m: (m.partition, m.offset))
    store = SqlAuditStore(f"sqlite:///{folder / f'{run}.db'}", subject_keys=SubjectKeys(os.urandom(32)))
    store.migrate()
    audit = AuditService(store)
    for start in range(0, len(messages), 2000):
        audit.capture(messages[start : start + 2000])
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    event = audit.make_checkpoint(force=True)
    assert event is not None
    signed = event.model_copy(
        update={"payload": signer.sign(event.payload, "bench", store.stored_hash(1) or "")}
    )
    asyncio.run(publish(bootstrap, checkpoints, encode_event(signed)))
    return store, TrailPolicy("bench", checkpoints, {}, TrustedKeys([signer.public]))


async def publish(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def main() -> None:
    args = parse_args()
    chain_s, trail_s = [], []
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench_kafka(args.bootstrap, Path(tmp) / "kafka", args.port) as servers,
    ):
        store, policy = build(servers, Path(tmp), args.events)
        for _ in range(args.runs):
            started = time.perf_counter()
            assert verify_store(store).ok
            chain_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            with KafkaLog(servers) as log:
                report = verify_trail(store, log, policy)
            trail_s.append(time.perf_counter() - started)
            assert report.intact and report.kafka_rows_checked == args.events, report.problems
        store.dispose()
    result = {
        "events": args.events,
        "runs": args.runs,
        "chain_only_s": statistics.median(chain_s),
        "whole_trail_s": statistics.median(trail_s),
        "chain_only_rows_per_s": args.events / statistics.median(chain_s),
        "whole_trail_rows_per_s": args.events / statistics.median(trail_s),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
