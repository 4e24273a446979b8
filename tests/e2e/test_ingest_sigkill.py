"""Nothing lost, nothing doubled: ingest runs as its own process, is killed with SIGKILL mid-stream and
restarted; every raw offset then has exactly one distinct outcome (one event id, one kind)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.bus_access import kafka_options
from infra.settings import REPO_ROOT
from servicekit.auth import generate_key, hash_key
from tests.support import create_topic, wait_ready, wait_until
from workbench.demo_data import ApplicationStream, run_id

RECORDS = 12_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Outcomes:
    """Reads the clean and rejected topics continuously; keeps every event per raw coordinate."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics, **kafka_options(bootstrap), group_id=None, auto_offset_reset="earliest"
        )
        self.by_source: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    source = event["payload"]["source"]
                    where = (source["partition"], source["offset"])
                    self.by_source[where].append((event["event_id"], event["event_type"]))

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        await self.consumer.stop()


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )


async def test_sigkill_mid_stream_loses_and_doubles_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = run_id(10)  # letters only: never nine digits in a row, which ingest takes for an SSN
    raw, clean, rejected = f"e2e.raw.{run}", f"e2e.clean.{run}", f"e2e.rejected.{run}"
    await create_topic(kafka_bootstrap, raw, partitions=3)
    for topic in (clean, rejected):
        await create_topic(kafka_bootstrap, topic, partitions=3)
    ops_key = generate_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps([{"name": "ops", "role": "ops", "sha256": hash_key(ops_key)}]))
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INGEST_HTTP_PORT": str(port),
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_API_KEYS_FILE": str(keys_file),
        "INGEST_RAW_TOPIC": raw,
        "INGEST_CLEAN_TOPIC": clean,
        "INGEST_REJECTED_TOPIC": rejected,
        "INGEST_GROUP_ID": f"ingest-e2e-{run}",
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }

    # The stream: demo records (a fifth with free text), every 50th one malformed.
    apps = ApplicationStream(seed=41, id_prefix=f"e2e-{run}", notes_share=0.2).take(RECORDS)
    producer = AIOKafkaProducer(**kafka_options(kafka_bootstrap), acks="all", linger_ms=5)
    await producer.start()
    futures = []
    for i, app in enumerate(apps):
        value = b"{broken" if i % 50 == 49 else msgspec.json.encode(app.record)
        futures.append(await producer.send(raw, value, app.record["application_id"].encode()))
    produced = {(m.partition, m.offset) for m in await asyncio.gather(*futures)}
    await producer.stop()

    outcomes = Outcomes(kafka_bootstrap, [clean, rejected])
    await outcomes.start()
    log = tmp_path / "ingest.log"
    first = start_ingest(env, log)
    try:
        await wait_ready(port, first, "ingest")
        await wait_until(lambda: len(outcomes.by_source) >= RECORDS // 10, timeout_s=180, what="progress")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        at_kill = len(outcomes.by_source)
        second = start_ingest(env, log)
        try:
            await wait_ready(port, second, "ingest")
            await wait_until(lambda: len(outcomes.by_source) >= RECORDS, timeout_s=300, what="every outcome")
            async with httpx.AsyncClient() as client:
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics", headers={"X-API-Key": ops_key})
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        await outcomes.stop()

    assert 0 < at_kill < RECORDS, "the kill must land mid-stream"
    assert set(outcomes.by_source) == produced  # nothing lost, nothing from elsewhere
    distinct: dict[tuple[int, int], set[tuple[str, str]]] = {k: set(v) for k, v in outcomes.by_source.items()}
    assert all(len(ids) == 1 for ids in distinct.values())  # redeliveries repeat the same event
    kinds: dict[str, int] = defaultdict(int)
    for ids in distinct.values():
        kinds[next(iter(ids))[1]] += 1
    assert kinds == {"RecordCleaned": RECORDS - RECORDS // 50, "RecordRejected": RECORDS // 50}
    redelivered = sum(len(v) - 1 for v in outcomes.by_source.values())
    print(f"\nkilled after {at_kill} outcomes; {redelivered} outcomes republished after the restart")
    assert metrics.status_code == 200 and "ingest_outcomes_total" in metrics.text
