"""The audit service as its own process (`python -m services.audit`): SIGKILLed mid-stream and restarted,
it ends with every event exactly once and an intact chain; its API and CLI answer on the result."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from servicekit.auth import Role, write_dev_keys
from tests.support import create_topic

EVENTS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def produce(bootstrap: str, topic: str, run: str) -> list[str]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    ids = []
    try:
        futures = []
        for i in range(EVENTS):
            event = PredictionMade.create(
                PredictionMadePayload(
                    prediction_id=f"{run}-{i}",
                    entity_id=f"c-{i % 97}",
                    model_name="fraud",
                    model_version="3",
                    score=0.5,
                    decision="approve",
                    features={"x": i},
                    latency_ms=1.0,
                ),
                producer="serving",
            )
            ids.append(str(event.event_id))
            futures.append(await producer.send(topic, encode_event(event), key=event.key()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return ids


def count(db: Path, topic: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return int(
                conn.execute("SELECT count(*) FROM audit_events WHERE topic = ?", (topic,)).fetchone()[0]
            )
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    run = uuid.uuid4().hex[:10]
    topic = f"test.audit.{run}.e2e"
    asyncio.run(create_topic(kafka_bootstrap, topic, partitions=3))
    asyncio.run(create_topic(kafka_bootstrap, f"test.audit.{run}.cp"))
    _, hashed = write_dev_keys(tmp_path / "secrets", [("auditor", Role.AUDITOR)])
    key = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())["auditor"]["key"]
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_API_KEYS_FILE": str(hashed),
        "AUDIT_HTTP_PORT": str(port),
        "AUDIT_TOPICS": json.dumps([topic]),
        "AUDIT_GROUP_ID": f"audit-{run}",
        "AUDIT_CHECKPOINT_TOPIC": f"test.audit.{run}.cp",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"audit-{len(processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "services.audit"], env=env, stdout=log, stderr=log)
        processes.append(process)
        return process

    yield {"run": run, "topic": topic, "start": start, "port": port, "key": key, "env": env,
           "db": tmp_path / "state" / "audit" / "audit.db"}  # fmt: skip
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def wait_for(predicate, what: str, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_sigkill_mid_stream_then_restart_records_every_event_exactly_once(
    kafka_bootstrap: str, setup: dict[str, object]
) -> None:
    db, topic, start = Path(str(setup["db"])), str(setup["topic"]), setup["start"]
    ids = asyncio.run(produce(kafka_bootstrap, topic, str(setup["run"])))
    first = start()  # type: ignore[operator]
    wait_for(lambda: count(db, topic) > 0, "the first batch")
    first.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, offsets not yet committed
    first.wait(timeout=30)
    at_kill = count(db, topic)
    assert 0 < at_kill < EVENTS

    start()  # type: ignore[operator]
    wait_for(lambda: count(db, topic) == EVENTS, f"{EVENTS} events after the restart")
    url, headers = f"http://127.0.0.1:{setup['port']}", {"X-API-Key": str(setup["key"])}
    wait_for(lambda: _ready(url), "the restarted service to be ready")

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = [r[0] for r in conn.execute("SELECT event_id FROM audit_events WHERE topic = ?", (topic,))]
        coordinates = conn.execute(
            'SELECT count(DISTINCT partition || ":" || "offset") FROM audit_events WHERE topic = ?', (topic,)
        ).fetchone()[0]
    assert sorted(stored) == sorted(ids)  # none missing, none twice
    assert coordinates == EVENTS

    summary = httpx.get(f"{url}/summary", headers=headers, timeout=30).json()
    assert summary["events_by_type"]["PredictionMade"] >= EVENTS
    page = httpx.get(
        f"{url}/events", params={"prediction_id": f"{setup['run']}-7"}, headers=headers, timeout=30
    )
    assert [e["prediction_id"] for e in page.json()["items"]] == [f"{setup['run']}-7"]
    assert httpx.get(f"{url}/verify", headers=headers, timeout=60).json()["intact"] is True
    assert httpx.get(f"{url}/events", params={"since": "not-a-date"}, headers=headers).status_code == 422

    done = subprocess.run(
        [sys.executable, "-m", "services.audit.cli", "verify"],
        env=setup["env"],  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["checked"] == summary["chain_length"]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
