"""What the platform benchmark reads back from Kafka after each phase, in one pass over the phase's
offsets (`records_between`): record -> features online (for each record, the Kafka timestamp of the
FeaturesUpdated that covered it minus its raw record's), and the drift alarms raised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.topics import DRIFT_DETECTED, RECORDS_CLEAN, RECORDS_RAW
from infra.bus_access import kafka_options


def features_latency(records: list[tuple[str, Any]]) -> dict[str, float | None]:
    """Record -> features online: FeaturesUpdated's Kafka timestamp minus the raw record's, per record
    (`records` as `records_between` gives them; other topics' are passed over)."""
    raw_ts: dict[tuple[int, int], int] = {}
    clean_to_raw: dict[tuple[int, int], tuple[int, int]] = {}
    online_ts: dict[tuple[int, int], int] = {}
    for topic, record in records:
        where = (record.partition, record.offset)
        if topic == RECORDS_RAW:
            raw_ts[where] = record.timestamp
        elif topic == RECORDS_CLEAN:
            source = json.loads(record.value)["payload"]["source"]
            clean_to_raw[where] = (source["partition"], source["offset"])
        elif topic != DRIFT_DETECTED:
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


async def records_between(
    bootstrap: str, start: dict[Any, int], end: dict[Any, int]
) -> list[tuple[str, Any]]:
    """(topic, record) for every record from `start` up to `end`, per topic partition."""
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


def drift_alarms(records: list[tuple[str, Any]]) -> list[str]:
    """The DriftDetected events among `records`, each as `kind feature by detector (statistic)`: the
    bench's stream has no drift, so each one is a false alarm to name, not only count."""
    alarms = []
    for topic, record in records:
        if topic != DRIFT_DETECTED:
            continue
        payload = json.loads(record.value)["payload"]
        what = payload["kind"] + (f" {payload['feature']}" if payload.get("feature") else "")
        alarms.append(f"{what} by {payload['detector']} ({payload['statistic']:.4g})")
    return alarms
