"""The platform bench names each drift alarm of a phase (its stream has no drift: each is a false
alarm to look into), read from the DriftDetected events themselves rather than counted from offsets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from bench import platform_latency
from contracts.events.monitoring import DriftDetected
from contracts.registry import encode_event
from contracts.samples import sample_payloads
from contracts.topics import DRIFT_DETECTED


def test_each_alarm_is_named_by_kind_feature_detector_and_statistic(monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_payloads()[DriftDetected]
    prediction = data.model_copy(update={"kind": "prediction", "feature": None, "detector": "CUSUM",
                                         "statistic": 12.345678})  # fmt: skip
    events = [DriftDetected.create(payload, producer="drift") for payload in (data, prediction)]
    seen: list[tuple[Any, Any]] = []

    async def between(bootstrap: str, start: dict[Any, int], end: dict[Any, int]) -> list[Any]:
        seen.append((start, end))
        return [(DRIFT_DETECTED, SimpleNamespace(value=encode_event(event))) for event in events]

    monkeypatch.setattr(platform_latency, "_records_between", between)
    alarms = asyncio.run(platform_latency.drift_alarms("broker:9092", {"p": 3}, {"p": 5}))
    assert alarms == ["data amount by ADWIN (0.31)", "prediction by CUSUM (12.35)"]
    assert seen == [({"p": 3}, {"p": 5})]
