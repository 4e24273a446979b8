"""Two explain processes, as `mlops up --profile cluster` runs them (`python -m services.explain`, one
state folder, one consumer group over prediction.made), on the real broker: one is killed with
SIGKILL mid-stream; the other takes its partitions over and every prediction is recorded once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from contracts.registry import encode_event
from infra.settings import REPO_ROOT
from servicekit.auth import generate_key, hash_key
from tests.integration.test_explain_instances import holders, prediction
from tests.integration.test_serving_support import free_port
from tests.support import create_topic, wait_ready, wait_until

PREDICTIONS = 600


def recorded(state: Path) -> int:
    path = state / "explain" / "predictions.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        try:
            return int(db.execute("SELECT COUNT(DISTINCT prediction_id) FROM predictions").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.explain"], cwd=REPO_ROOT,
            env={**env, "EXPLAIN_HTTP_PORT": str(port)}, stdout=out, stderr=out,
        )  # fmt: skip


async def stream(bootstrap: str, topic: str) -> None:
    """The predictions, about 100 a second (keyed by prediction id, so over every partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(PREDICTIONS):
            event = prediction(i)
            await producer.send_and_wait(topic, encode_event(event), key=event.payload.prediction_id.encode())
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()


async def test_sigkill_of_one_explain_instance_mid_stream_loses_no_prediction(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"test.explain-sigkill.{uuid.uuid4().hex[:8]}.predictions"
    await create_topic(kafka_bootstrap, topic, partitions=3)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "ops", "role": "ops", "sha256": hash_key(generate_key())}]))
    state = tmp_path / "state"
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MLOPS_STATE_DIR": str(state),
        "MLOPS_API_KEYS_FILE": str(keys), "EXPLAIN_PREDICTIONS_TOPIC": topic,
        "EXPLAIN_PROMOTIONS_TOPIC": f"{topic}.promotions", "EXPLAIN_EXPLANATIONS_TOPIC": f"{topic}.out",
    }  # fmt: skip
    ports = free_port(), free_port()
    first = start(env, ports[0], tmp_path / "explain-1.log")
    second = start(env, ports[1], tmp_path / "explain-2.log")
    try:
        await asyncio.gather(
            wait_ready(ports[0], first, "explain", 180), wait_ready(ports[1], second, "explain", 180)
        )
        deadline = asyncio.get_running_loop().time() + 90
        while await holders(kafka_bootstrap, "explain", topic) < 2:  # the two share the partitions
            assert asyncio.get_running_loop().time() < deadline, "the two never shared the partitions"
            await asyncio.sleep(0.5)
        producing = asyncio.create_task(stream(kafka_bootstrap, topic))
        await wait_until(lambda: recorded(state) >= 100, 120, "the first predictions recorded")
        first.send_signal(signal.SIGKILL)  # mid-stream
        first.wait(timeout=30)
        at_kill = recorded(state)
        await producing
        await wait_until(lambda: recorded(state) == PREDICTIONS, 180, "every prediction recorded")
        assert second.poll() is None
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    assert 0 < at_kill < PREDICTIONS, "the kill must land mid-stream"
    print(f"\nkilled after {at_kill} of {PREDICTIONS} predictions recorded; the survivor recorded the rest")
