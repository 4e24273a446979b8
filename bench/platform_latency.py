"""Record -> features online, for the platform benchmark: for each record of a phase, the Kafka
timestamp of the FeaturesUpdated that covered it minus its raw record's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.topics import RECORDS_CLEAN, RECORDS_RAW
from infra.bus_access import kafka_options


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


async def drift_alarms(bootstrap: str, start: dict[Any, int], end: dict[Any, int]) -> list[str]:
    """The DriftDetected events between the offsets, each as `kind feature by detector (statistic)`:
    the bench's stream has no drift, so each one is a false alarm to name, not only count."""
    alarms = []
    for _, record in await _records_between(bootstrap, start, end):
        payload = json.loads(record.value)["payload"]
        what = payload["kind"] + (f" {payload['feature']}" if payload.get("feature") else "")
        alarms.append(f"{what} by {payload['detector']} ({payload['statistic']:.4g})")
    return alarms
