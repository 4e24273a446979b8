"""The platform bench names each drift alarm of a phase (its stream has no drift: each is a false
alarm to look into), read from the DriftDetected events themselves rather than counted from offsets,
out of the one read of the phase's records that its features latency comes from too."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from bench import platform_latency
from contracts.events.monitoring import DriftDetected
from contracts.registry import encode_event
from contracts.samples import sample_payloads
from contracts.topics import DRIFT_DETECTED, FEATURES_UPDATED, RECORDS_CLEAN, RECORDS_RAW


def test_each_alarm_is_named_by_kind_feature_detector_and_statistic() -> None:
    data = sample_payloads()[DriftDetected]
    prediction = data.model_copy(update={"kind": "prediction", "feature": None, "detector": "CUSUM",
                                         "statistic": 12.345678})  # fmt: skip
    events = [DriftDetected.create(payload, producer="drift") for payload in (data, prediction)]
    other = SimpleNamespace(value=b"not an event", partition=0, offset=0, timestamp=0)
    records = [
        (RECORDS_RAW, other),
        *((DRIFT_DETECTED, SimpleNamespace(value=encode_event(e))) for e in events),
    ]
    assert platform_latency.drift_alarms(records) == [
        "data amount by ADWIN (0.31)",
        "prediction by CUSUM (12.35)",
    ]


def test_features_latency_pairs_each_record_with_the_update_that_covered_it() -> None:
    """Raw at 1.0 s, clean from it, online at 1.25 s: 0.25 s; an alarm in the same read is passed over,
    and a raw record whose features never came online is not counted."""

    def record(partition: int, offset: int, timestamp_ms: int, value: Any = None) -> SimpleNamespace:
        body = json.dumps(value).encode() if value is not None else b"{}"
        return SimpleNamespace(partition=partition, offset=offset, timestamp=timestamp_ms, value=body)

    records = [
        (RECORDS_RAW, record(0, 7, 1000)),
        (RECORDS_RAW, record(0, 8, 1100)),  # its features never came online
        (RECORDS_CLEAN, record(1, 3, 1010, {"payload": {"source": {"partition": 0, "offset": 7}}})),
        (RECORDS_CLEAN, record(1, 4, 1110, {"payload": {"source": {"partition": 0, "offset": 8}}})),
        (FEATURES_UPDATED, record(0, 0, 1250, {"payload": {"sources": [{"partition": 1, "offset": 3}]}})),
        (DRIFT_DETECTED, record(0, 0, 1300, {"payload": {}})),
    ]
    found = platform_latency.features_latency(records)
    assert found == {"features_online_p50_s": 0.25, "features_online_p99_s": 0.25, "features_online_n": 1}
