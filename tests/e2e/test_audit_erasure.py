"""Erasure on the audit service as its own process (`python -m services.audit`) and the real broker:
events of three data subjects are streamed in, two subjects are erased (one through `POST /erasures`,
one through the CLI), and then raw SQL (sqlite3 on the database file) and a byte search over the file,
its WAL and shared memory find none of their values nor their data keys, the API answers by entity
with nothing readable, the third subject is untouched, and verify (API and CLI) still passes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    FeaturesUpdated,
    FeaturesUpdatedPayload,
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
    PredictionMadePayload,
    RecordCleaned,
    RecordCleanedPayload,
)
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from servicekit.auth import Role, write_dev_keys
from services.audit.adapters.subject_keys import SubjectKeys, load_secret
from tests.e2e.test_audit_service import _ready, free_port, wait_for
from tests.support import create_topic

ERASED_BY_API = "321-54-9876"  # application ids shaped like an SSN and a phone number (issue 18: 3)
ERASED_BY_CLI = "+44 7700 900123"
KEPT = "app-kept-0001"
T = datetime(2025, 6, 7, 8, 9, 10, tzinfo=UTC)


def applicant(subject: str) -> str:
    return {ERASED_BY_API: "Quentin Orlov", ERASED_BY_CLI: "Wilhelmina Tarrant", KEPT: "Kept Person"}[subject]


def events_of(subject: str) -> list[Event[Any]]:
    source = KafkaCoordinates(topic="records.raw", partition=0, offset=1)
    record = {"application_id": subject, "applicant": applicant(subject), "income": 51234.5}
    prediction_id = f"pred-{uuid.uuid4().hex}"
    return [
        RecordCleaned.create(
            RecordCleanedPayload(dataset="loans", entity_id=subject, event_time=T, record=record,
                                 source=source, scrubbed_fields=[]),
            producer="ingest",
        ),
        PredictionMade.create(
            PredictionMadePayload(prediction_id=prediction_id, entity_id=subject, model_name="credit",
                                  model_version="2", score=0.3, decision="approve",
                                  features={"income": 51234.5}, latency_ms=1.0),
            producer="serving",
        ),
        LabelObserved.create(
            LabelObservedPayload(dataset="loans", entity_id=subject, label="repaid", event_time=T,
                                 prediction_id=prediction_id),
            producer="serving",
        ),
    ]  # fmt: skip


async def produce(bootstrap: str, topic: str, raw_topic: str) -> int:
    from aiokafka import AIOKafkaProducer

    subjects = (ERASED_BY_API, ERASED_BY_CLI, KEPT)
    features = FeaturesUpdated.create(
        FeaturesUpdatedPayload(feature_view="loans", entity_ids=list(subjects), rows=3, event_time_min=T,
                               event_time_max=T, sources=[]),
        producer="features",
    )  # fmt: skip
    events = [e for s in subjects for e in events_of(s)] + [features]
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, encode_event(event), key=event.key())
        for subject in subjects:  # the raw record, keyed by its application id as ingest keys it
            raw = json.dumps({"application_id": subject, "applicant": applicant(subject)}).encode()
            await producer.send_and_wait(raw_topic, raw, key=subject.encode())
    finally:
        await producer.stop()
    return len(events) + len(subjects)


@pytest.fixture
def service(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    run = uuid.uuid4().hex[:10]
    topic, raw_topic, checkpoints = (f"test.erase.{run}.{n}" for n in ("ev", "raw", "cp"))
    for name, partitions in ((topic, 3), (raw_topic, 1), (checkpoints, 1)):
        asyncio.run(create_topic(kafka_bootstrap, name, partitions))
    write_dev_keys(tmp_path / "secrets", [("auditor", Role.AUDITOR), ("ops", Role.OPS)])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_API_KEYS_FILE": str(tmp_path / "secrets" / "api-keys.hashed.json"),
        "AUDIT_HTTP_PORT": str(port),
        "AUDIT_TOPICS": json.dumps([topic, raw_topic]),
        "AUDIT_CONTENT_FREE_TOPICS": json.dumps([raw_topic]),
        "AUDIT_GROUP_ID": f"audit-{run}",
        "AUDIT_CHECKPOINT_TOPIC": checkpoints,
        "AUDIT_CHECKPOINT_INTERVAL_S": "0.5",
    }
    expected = asyncio.run(produce(kafka_bootstrap, topic, raw_topic))
    log = open(tmp_path / "audit.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "services.audit"], env=env, stdout=log, stderr=log)
    yield {
        "url": f"http://127.0.0.1:{port}", "env": env, "expected": expected, "state": tmp_path / "state",
        "auditor": {"X-API-Key": plain["auditor"]["key"]}, "ops": {"X-API-Key": plain["ops"]["key"]},
    }  # fmt: skip
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


def test_erased_subjects_leave_nothing_readable_in_the_running_service(service: dict[str, Any]) -> None:
    url, state, auditor = service["url"], Path(service["state"]), service["auditor"]
    db = state / "audit" / "audit.db"
    wait_for(lambda: _ready(url) and _rows(db) == service["expected"], "every event stored", 180)
    wait_for(lambda: _verify(url, auditor)["intact"], "a signed checkpoint and committed offsets", 180)

    before = _events(url, auditor, entity_id=ERASED_BY_API)
    assert [e["event_type"] for e in before if e["kind"] == "event"] == ["RecordCleaned", "PredictionMade",
                                                                          "LabelObserved"]  # fmt: skip
    cleaned = next(e for e in before if e["event_type"] == "RecordCleaned")
    assert cleaned["event"]["payload"]["record"]["applicant"] == applicant(ERASED_BY_API)  # opened
    keys = SubjectKeys(load_secret(state / "secrets" / "audit-subject.secret", create=False))
    erased_refs = {keys.ref(ERASED_BY_API), keys.ref(ERASED_BY_CLI)}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored_keys = conn.execute("SELECT subject_ref, wrapped_key FROM audit_subject_keys").fetchall()
    wrapped = [bytes(key) for ref, key in stored_keys if ref in erased_refs]
    assert len(wrapped) == 2

    denied = httpx.post(f"{url}/erasures", json={"subject_id": ERASED_BY_API}, headers=auditor, timeout=30)
    assert denied.status_code == 403
    answer = httpx.post(
        f"{url}/erasures", json={"subject_id": ERASED_BY_API}, headers=service["ops"], timeout=30
    )
    assert answer.status_code == 200 and answer.json()["keys_deleted"] == 1, answer.text
    assert ERASED_BY_API not in answer.text
    cli = subprocess.run(
        [sys.executable, "-m", "services.audit.cli", "erase", "-", "--by", "dpo"],
        input=ERASED_BY_CLI + "\n", env=service["env"], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert cli.returncode == 0 and json.loads(cli.stdout)["keys_deleted"] == 1, cli.stderr
    assert ERASED_BY_CLI not in cli.stdout

    erased_values = [ERASED_BY_API, ERASED_BY_CLI, applicant(ERASED_BY_API), applicant(ERASED_BY_CLI)]
    for subject in (ERASED_BY_API, ERASED_BY_CLI):
        found = _events(url, auditor, entity_id=subject)
        assert sorted(e["kind"] for e in found) == [
            "erasure",
            "event",
            "event",
            "event",
            "raw",
        ]  # by reference
        assert not any(value in json.dumps(found) for value in erased_values)
    everything = json.dumps(_events(url, auditor))
    assert not any(value in everything for value in erased_values)
    assert KEPT in everything and applicant(KEPT) in everything  # the other subject is untouched

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:  # raw SQL, no service in between
        rows = conn.execute("SELECT * FROM audit_events").fetchall()
        keys_left = [r for (r,) in conn.execute("SELECT subject_ref FROM audit_subject_keys")]
        erasures = conn.execute("SELECT entity_id, note FROM audit_events WHERE kind = 'erasure'").fetchall()
    assert not any(value in repr(rows) for value in erased_values)
    assert keys_left == [keys.ref(KEPT)]
    assert {ref for ref, _ in erasures} == erased_refs and {note for _, note in erasures} == {"ops", "dpo"}
    content = b"".join(path.read_bytes() for path in db.parent.glob("audit.db*"))  # db, WAL, shared memory
    for value in erased_values:
        assert value.encode() not in content and json.dumps(value).encode() not in content
    for key in wrapped:
        assert key not in content

    wait_for(lambda: _verify(url, auditor)["intact"], "verify after the erasures", 120)
    done = subprocess.run(
        [sys.executable, "-m", "services.audit.cli", "verify", "--workers", "1"],
        env=service["env"], capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


def _events(url: str, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/events", params={**params, "limit": "1000"}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _verify(url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{url}/verify", headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())
