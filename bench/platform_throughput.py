"""The whole platform's throughput, as `mlops up` starts it: demo loan applications with free-text
notes (and their labels) streamed into records.raw, until every consumer group of every service has
committed everything (so each record is clean or rejected, its features are online, and it is in
the audit chain, and the drift and training services have read it).

    .venv/bin/python -m bench.platform_throughput [--records 20000] [--rates 500,1000]
        [--rate-seconds 20] [--attach]

Phases, in one run against one stack:
1. baseline: the raw broker, the same record bytes produced to a fresh topic and consumed back;
2. max rate: `--records` applications as fast as the producer goes, then until all lag is 0;
3. a champion is trained from what phase 2 streamed; serving alone at `--serving-rate` predictions/s
   by entity key for `--rate-seconds` (the serving baseline);
4. each fixed rate of `--rates` for `--rate-seconds`, with the same serving load alongside, then
   until all lag is 0.

Each phase reports end-to-end records/s, CPU ms per record of each component (from /proc, the
broker included), the total lag sampled over time, and record -> features online p50/p99 (the
Kafka timestamp of the FeaturesUpdated that covered a record, minus its raw record's). Results go
to bench/results/platform_throughput.json (git-ignored); the write-up is in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import platform_serving
from bench.platform_stack import Stack, cpu_seconds
from contracts.events import LabelObserved, LabelObservedPayload
from contracts.registry import encode_event
from contracts.topics import FEATURES_UPDATED, LABELS_OBSERVED, RECORDS_CLEAN, RECORDS_RAW
from infra.bus_access import kafka_options
from infra.lag import LagReader
from infra.settings import REPO_ROOT
from infra.topics import TopicPlan, ensure_topics_async

SERVICES = ("ingest", "features", "training", "serving", "drift", "explain", "audit")
# Consumer groups that must have read every record of the phase (by their services' settings; the
# audit reads every topic with its one group).
REQUIRED = (
    ("ingest", RECORDS_RAW), ("features", RECORDS_CLEAN), ("audit", RECORDS_CLEAN),
    ("drift.records.clean", RECORDS_CLEAN), ("audit", RECORDS_RAW),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.platform_throughput", description=__doc__)
    p.add_argument("--records", type=int, default=20_000, help="records of the max-rate phase")
    p.add_argument("--rates", default="500,1000", help="fixed rates (records/s), comma-separated")
    p.add_argument("--rate-seconds", type=float, default=20.0, help="length of each fixed-rate phase")
    p.add_argument("--serving-rate", type=float, default=200.0, help="predictions/s (0: no serving load)")
    p.add_argument("--serving-entities", type=int, default=2000, help="entities the predictions ask for")
    p.add_argument("--drain-timeout-s", type=float, default=900.0)
    p.add_argument("--kafka-port", type=int, default=19_692)
    p.add_argument("--first-service-port", type=int, default=19_701)
    p.add_argument("--attach", help="state folder of a running stack to measure instead of starting one")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "platform_throughput.json")
    return p.parse_args(argv)


def demo_records(n: int, seed: int, prefix: str) -> list[tuple[bytes, bytes, bytes]]:
    """(key, record, label event) per application, encoded before the clock starts."""
    from workbench.demo_data import ApplicationStream

    out = []
    for app in ApplicationStream(seed=seed, id_prefix=prefix).take(n):
        key = app.record["application_id"].encode()
        label = LabelObserved.create(
            LabelObservedPayload(
                dataset="loan_applications", entity_id=app.record["application_id"], label=app.label,
                event_time=app.record["applied_at"],
            ),
            producer="bench",
        )  # fmt: skip
        out.append((key, msgspec.json.encode(app.record), encode_event(label)))
    return out


async def produce(
    bootstrap: str, items: list[tuple[bytes, bytes, bytes]], rate: float, topic: str = RECORDS_RAW
) -> float:
    """Send every record (and its label, unless `topic` is a baseline topic); pace at `rate` per second
    (0: as fast as acks come). Returns the seconds until the last acknowledgement."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.monotonic()
    try:
        futures = []
        for i, (key, value, label) in enumerate(items):
            if rate > 0 and i % 10 == 0:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            futures.append(await producer.send(topic, value, key))
            if topic == RECORDS_RAW:
                futures.append(await producer.send(LABELS_OBSERVED, label, key))
            if len(futures) >= 2000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        return time.monotonic() - started
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, **kafka_options(bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    started, seen = time.monotonic(), 0
    try:
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen += len(records)
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def baseline(bootstrap: str, items: list[tuple[bytes, bytes, bytes]]) -> dict[str, float]:
    topic = f"bench.baseline.{int(time.time())}"
    await ensure_topics_async(bootstrap, [TopicPlan(topic, 3, 1)])  # as records.raw: 3 partitions
    produce_s = await produce(bootstrap, items, 0, topic)
    consume_s = await consume_all(bootstrap, topic, len(items))
    return {"produce_per_s": len(items) / produce_s, "consume_per_s": len(items) / consume_s}


async def run_phase(stack: Stack, name: str, items: list[tuple[bytes, bytes, bytes]], rate: float,
                    drain_timeout_s: float, during: Coroutine[Any, Any, Any] | None = None,
                    ) -> dict[str, Any]:  # fmt: skip
    """Stream `items` at `rate` and wait until every service's consumer groups have caught up;
    `during` (e.g. a serving load) runs alongside the stream and its result is kept."""
    lags = LagReader(stack.bootstrap)
    await lags.start()
    try:
        topics = [RECORDS_RAW, RECORDS_CLEAN, FEATURES_UPDATED]
        start_ends = await lags.end_offsets(topics)
        pids = stack.pids()
        cpu_before, started = cpu_seconds(pids), time.monotonic()
        producing = asyncio.create_task(produce(stack.bootstrap, items, rate))
        alongside = asyncio.create_task(during) if during is not None else None
        series: list[tuple[float, int]] = []
        quiet = 0
        while quiet < 2:
            await asyncio.sleep(0.5)
            elapsed = time.monotonic() - started
            if elapsed > drain_timeout_s:
                raise TimeoutError(f"{name}: the platform did not catch up in {drain_timeout_s:.0f}s")
            lag = sum((await lags.lag_by_group(SERVICES, start_ends, REQUIRED)).values())
            series.append((round(elapsed, 2), lag))
            quiet = quiet + 1 if producing.done() and lag == 0 else 0
        produce_s = await producing
        serving = await alongside if alongside is not None else None
        # The last poll that still saw lag, plus half a poll: when the platform caught up.
        caught_up = next((t for t, lag in reversed(series) if lag > 0), series[0][0]) + 0.25
        cpu_after = cpu_seconds(pids)
        end_ends = await lags.end_offsets(topics)
    finally:
        await lags.stop()
    n = len(items)
    cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / n, 3) for k in cpu_before}
    latency = await features_latency(stack.bootstrap, start_ends, end_ends)
    return {
        "phase": name, "records": n, "rate": rate or "max", "produce_s": round(produce_s, 2),
        "end_to_end_s": round(caught_up, 2), "records_per_s": round(n / caught_up, 1),
        "cpu_ms_per_record": cpu_ms, "cpu_ms_per_record_total": round(sum(cpu_ms.values()), 3),
        "lag_series": series, **latency, "serving_during": serving,
    }  # fmt: skip


async def features_latency(
    bootstrap: str, start: dict[Any, int], end: dict[Any, int]
) -> dict[str, float | None]:
    """Record -> features online: FeaturesUpdated's Kafka timestamp minus the raw record's, per record."""
    raw_ts: dict[tuple[int, int], int] = {}
    clean_to_raw: dict[tuple[int, int], tuple[int, int]] = {}
    online_ts: dict[tuple[int, int], int] = {}
    for topic, record in await _records_between(bootstrap, start, end):
        where = (record.partition, record.offset)
        if topic == RECORDS_RAW:
            raw_ts[where] = record.timestamp
        elif topic == RECORDS_CLEAN:
            source = json.loads(record.value)["payload"]["source"]
            clean_to_raw[where] = (source["partition"], source["offset"])
        else:
            for s in json.loads(record.value)["payload"]["sources"]:
                online_ts.setdefault((s["partition"], s["offset"]), record.timestamp)
    latencies = sorted(
        (online_ts[c] - raw_ts[r]) / 1000 for c, r in clean_to_raw.items() if c in online_ts and r in raw_ts
    )
    if not latencies:
        return {"features_online_p50_s": None, "features_online_p99_s": None, "features_online_n": 0}
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return {
        "features_online_p50_s": round(statistics.median(latencies), 3),
        "features_online_p99_s": round(p99, 3), "features_online_n": len(latencies),
    }  # fmt: skip


async def _records_between(bootstrap: str, start: dict[Any, int], end: dict[Any, int]) -> list[Any]:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        wanted = {tp: stop for tp, stop in end.items() if stop > start.get(tp, 0)}
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        while wanted:
            for tp, records in (await consumer.getmany(*wanted, timeout_ms=1000, max_records=5000)).items():
                for record in records:
                    if record.offset < wanted.get(tp, 0):
                        out.append((tp.topic, record))
                if records and records[-1].offset >= wanted.get(tp, 0) - 1:
                    wanted.pop(tp, None)
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14's stop() after assign()
            await consumer.stop()
    return out


async def measure(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    run = f"b{int(time.time()) % 100_000}"
    items = demo_records(args.records, seed=11, prefix=f"{run}-max")
    result: dict[str, Any] = {"baseline": await baseline(stack.bootstrap, items), "phases": []}
    print(json.dumps({"baseline": result["baseline"]}), flush=True)
    result["phases"].append(await _phase(args, stack, "max", items, 0.0))
    entity_ids = [json.loads(value)["application_id"] for _, value, _ in items[: args.serving_entities]]
    champion = await asyncio.to_thread(platform_serving.train_champion, stack) if args.serving_rate else None
    result["champion"] = champion
    if champion is not None:
        result["serving_idle"] = await platform_serving.load(
            stack, entity_ids, args.serving_rate, args.rate_seconds
        )
        print(json.dumps({"serving_idle": result["serving_idle"]}), flush=True)
    for i, rate in enumerate(int(r) for r in args.rates.split(",") if r):
        phase_items = demo_records(int(rate * args.rate_seconds), 12 + i, f"{run}-r{rate}")
        during = (
            platform_serving.load(stack, entity_ids, args.serving_rate, args.rate_seconds)
            if champion is not None
            else None
        )
        result["phases"].append(await _phase(args, stack, f"rate-{rate}", phase_items, float(rate), during))
    return result


async def _phase(
    args: argparse.Namespace,
    stack: Stack,
    name: str,
    items: list[tuple[bytes, bytes, bytes]],
    rate: float,
    during: Coroutine[Any, Any, Any] | None = None,
) -> dict[str, Any]:
    phase = await run_phase(stack, name, items, rate, args.drain_timeout_s, during)
    print(json.dumps({k: v for k, v in phase.items() if k != "lag_series"}), flush=True)
    return phase


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.attach:
        stack = Stack(Path(args.attach), args.kafka_port, args.first_service_port)
        result = asyncio.run(measure(args, stack))
    else:
        with tempfile.TemporaryDirectory(prefix="mlops-platform-bench-") as state:
            stack = Stack(Path(state), args.kafka_port, args.first_service_port)
            stack.up()
            try:
                result = asyncio.run(measure(args, stack))
            finally:
                stack.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
