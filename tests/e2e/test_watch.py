"""`mlops watch`: ops see drift and model events live, and nothing else they did not ask for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from contracts.events import DriftDetected, ModelPromoted, RecordCleaned
from contracts.registry import encode_event
from contracts.samples import sample_events
from infra.settings import REPO_ROOT
from infra.watch import describe
from tests.integration.test_event_bus import kit


def sample(kind: type) -> object:
    return next(e for e in sample_events() if isinstance(e, kind))


async def publish(bootstrap: str, events: list[object]) -> None:
    subs = kit(bootstrap)
    async with subs.broker:
        await subs.broker.connect()
        for event in events:
            await subs.broker.publish(encode_event(event), event.topic, key=event.key())  # type: ignore[attr-defined]


def test_watch_prints_drift_and_model_events_as_they_happen(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "watch", "--max-events", "2", "--timeout", "90"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        banner = watcher.stdout.readline()  # printed once it holds its partitions: later events are seen
        assert banner.startswith("watching ") and "drift.detected" in banner
        drift, promoted, clean = sample(DriftDetected), sample(ModelPromoted), sample(RecordCleaned)
        asyncio.run(publish(kafka_bootstrap, [clean, drift, promoted]))
        out, err = watcher.communicate(timeout=120)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines == [describe(drift), describe(promoted)]  # type: ignore[arg-type]
    assert "DRIFT" in lines[0] and "PROMOTED" in lines[1]  # the record event was not watched


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--max-events", "0"], "must be positive"), (["--timeout", "soon"], "not a number: 'soon'"),
     (["--timeout", "-1"], "must be positive"), (["--max-events", "2.5"], "not a whole number")],
)  # fmt: skip
def test_watch_refuses_bad_flags(args: list[str], message: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "watch", *args], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr
    assert time.monotonic() - started < 60
