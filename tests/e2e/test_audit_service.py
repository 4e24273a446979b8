"""The audit service as its own process (`python -m services.audit`): SIGKILLed mid-stream and restarted,
it ends with every event exactly once and an intact chain; its API and CLI answer on the result; a
verify while it appends passes. Then its database file is tampered with by raw SQL (sqlite3), as an
administrator of the database could, and both GET /verify and the CLI report each tampering from the
anchors in the real Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from servicekit.auth import Role, write_dev_keys
from services.audit.domain.entry import Captured
from tests.e2e import audit_tamper
from tests.support import create_topic
from tests.unit.test_audit_support import lineage_flow

EVENTS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def produce(bootstrap: str, topic: str, run: str, events: int = EVENTS) -> list[str]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    ids = []
    try:
        futures = []
        for i in range(events):
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
        "AUDIT_CHECKPOINT_INTERVAL_S": "0.5",
        "AUDIT_VERIFY_WORKERS": "1",
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


def test_verify_while_the_service_appends_never_calls_the_live_trail_broken(
    kafka_bootstrap: str, setup: dict[str, object]
) -> None:
    """Found by calling /verify in a loop at the demo stack while it scored: a row stored after verify
    read the store's last offsets was called "a claim Kafka never held". An auditor checks a live
    trail, so every verify during a stream must pass, and must still have compared rows with Kafka."""
    db, topic, run = Path(str(setup["db"])), str(setup["topic"]), str(setup["run"])
    setup["start"]()  # type: ignore[operator]
    url, headers = f"http://127.0.0.1:{setup['port']}", {"X-API-Key": str(setup["key"])}
    wait_for(lambda: _ready(url), "the service to be ready")
    bursts, size = 40, 150

    def stream() -> None:
        for burst in range(bursts):
            asyncio.run(produce(kafka_bootstrap, topic, f"{run}-{burst}", size))
            time.sleep(0.1)

    producer = threading.Thread(target=stream)
    producer.start()
    reports, during = [], 0
    while producer.is_alive() or count(db, topic) < bursts * size:
        before = count(db, topic)
        reports.append((before, _verify(url, headers)))
        during += count(db, topic) > before  # rows arrived while this verify ran
    producer.join()
    broken = [r["problems"] for _, r in reports if not r["intact"]]
    assert broken == [], broken[:3]
    # Each verify that began with rows stored compared them with Kafka. (One that began before the
    # service's first append has nothing to compare, and that may be more than the first verify.)
    with_rows = [r["kafka_rows_checked"] for before, r in reports if before > 0]
    assert during >= 3 and len(with_rows) >= 3 and min(with_rows) > 0, (during, len(reports), with_rows[:3])
    assert _verify(url, headers)["kafka_rows_checked"] >= bursts * size


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


TAMPER_EVENTS = 300


def test_raw_sql_tampering_of_the_running_service_is_caught_by_verify(
    kafka_bootstrap: str, setup: dict[str, object], tmp_path: Path
) -> None:
    db, topic, env = Path(str(setup["db"])), str(setup["topic"]), dict(setup["env"])  # type: ignore[call-overload]
    asyncio.run(produce(kafka_bootstrap, topic, str(setup["run"]), TAMPER_EVENTS))
    setup["start"]()  # type: ignore[operator]
    url, headers = f"http://127.0.0.1:{setup['port']}", {"X-API-Key": str(setup["key"])}
    wait_for(lambda: count(db, topic) == TAMPER_EVENTS and _ready(url), "every event stored")
    wait_for(lambda: _committed(kafka_bootstrap, env["AUDIT_GROUP_ID"]) == TAMPER_EVENTS, "commits")
    wait_for(
        lambda: _verify(url, headers).get("last_checkpoint_length") == TAMPER_EVENTS, "a signed checkpoint"
    )

    report = _verify(url, headers)
    assert report["intact"] is True, report["problems"]
    assert report["anchors_checked"] >= 1 and report["kafka_rows_checked"] == TAMPER_EVENTS
    assert _cli(env, db)[0] == 0
    intact_copy = audit_tamper.copy(db, tmp_path / "intact.db")

    # Live, on the service's own file: drop the guards, then append a forged ModelPromoted whose hash
    # is computed correctly. Before, GET /verify passed both and /events served the forgery.
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("DROP TRIGGER audit_events_no_delete")
    assert any("append-only guard" in p for p in _verify(url, headers)["problems"])
    forged = lineage_flow(version="666")[3]
    audit_tamper.append(db, Captured(topic, 0, 10**6, 0, forged.key(), encode_event(forged)))
    served = httpx.get(f"{url}/events", params={"model_version": "666"}, headers=headers, timeout=30)
    assert [e["event_type"] for e in served.json()["items"]] == ["ModelPromoted"]
    problems = _verify(url, headers)["problems"]
    assert any(f"claims {topic}:0@{10**6}, which Kafka never held" in p for p in problems), problems

    # Offline, on copies of the intact file, through the CLI (the same verification function).
    edit = "UPDATE audit_events SET producer = 'x' WHERE seq = "
    attacks = {
        "tail cut": ("DELETE FROM audit_events WHERE seq > 290", None, "not in the store"),
        "edit, chain recomputed": (edit + "5", 5, "published checkpoint"),
        "rewritten from row 1": (edit + "1", 1, "not the genesis"),
        "digest edited": (
            f"UPDATE audit_events SET value_sha256 = '{'ab' * 32}' WHERE seq = 7",
            7,
            "Kafka record",
        ),
    }
    for name, (statement, rechain_from, expected) in attacks.items():
        copy = audit_tamper.copy(intact_copy, tmp_path / f"{name}.db")
        with sqlite3.connect(copy) as conn:
            conn.execute("DROP TRIGGER audit_events_no_update")
            conn.execute("DROP TRIGGER audit_events_no_delete")
            conn.execute(statement)
        if rechain_from:
            audit_tamper.rechain(copy, rechain_from)
        code, out = _cli(env, copy)
        assert code == 1 and any(expected in p for p in out["problems"]), (name, out)


def _verify(url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{url}/verify", headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _cli(env: dict[str, str], db: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "services.audit.cli", "verify", "--database-url", f"sqlite:///{db}"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def _committed(bootstrap: str, group: str) -> int:
    async def read() -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
        await admin.start()
        try:
            return sum(meta.offset for meta in (await admin.list_consumer_group_offsets(group)).values())
        finally:
            await admin.close()

    return asyncio.run(read())
