"""Crypto-shredding in the audit store, on a real SQLite file and a real PostgreSQL database: what
identifies a data subject is chained only as ciphertext, queries open it while the subject's key
exists, and an erasure (itself chained) leaves nothing readable while the chain still verifies."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

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
    RecordRejected,
    RecordRejectedPayload,
)
from contracts.registry import encode_event
from services.audit.adapters.query import EventQuery
from services.audit.adapters.schema import subject_keys
from services.audit.adapters.store import SqlAuditStore
from services.audit.adapters.subject_keys import SubjectSecretMissing
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.verification import verify_store
from tests.support_postgres import PostgresCluster
from tests.unit.test_audit_store import new_url  # noqa: F401  (the two-backend fixture)
from tests.unit.test_audit_support import KEYS, as_attacker, captured, lineage_flow, open_store

SUBJECT = "123-45-6789"  # an application id shaped like an SSN (issue 18, defect 3)
OTHER = "app-0002"
NAME = "Zoë Margarethe Quaintance"  # a value of the subject's record
INCOME = 48213.77
T = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
SOURCE = KafkaCoordinates(topic="records.raw", partition=0, offset=7)


def subject_events(subject: str = SUBJECT, name: str = NAME) -> list[Event[Any]]:
    """Every event type that names a subject, with identifying values in each."""
    record = {"application_id": subject, "applicant": name, "income": INCOME}
    prediction_id = f"pred-{uuid.uuid4().hex}"  # serving's ids say nothing of the subject
    return [
        RecordCleaned.create(
            RecordCleanedPayload(dataset="loans", entity_id=subject, event_time=T, record=record,
                                 source=SOURCE, scrubbed_fields=["notes"]),
            producer="ingest",
        ),
        RecordRejected.create(
            RecordRejectedPayload(dataset="loans", source=SOURCE, reason={"code": "range", "message": "x"},
                                  entity_id=subject, record=record, raw_sha256="ab" * 32, raw_size=10),
            producer="ingest",
        ),
        FeaturesUpdated.create(
            FeaturesUpdatedPayload(feature_view="loans", entity_ids=[subject, OTHER], rows=2,
                                   event_time_min=T, event_time_max=T, sources=[SOURCE]),
            producer="features",
        ),
        PredictionMade.create(
            PredictionMadePayload(prediction_id=prediction_id, entity_id=subject, model_name="credit",
                                  model_version="3", score=0.7, decision="review",
                                  features={"income": INCOME, "applicant_age": 41}, latency_ms=1.0),
            producer="serving",
        ),
        LabelObserved.create(
            LabelObservedPayload(dataset="loans", entity_id=subject, label="defaulted", event_time=T,
                                 prediction_id=prediction_id),
            producer="serving",
        ),
    ]  # fmt: skip


def everything_stored(store: SqlAuditStore) -> str:
    """Every value of every row of the audit tables, as raw SQL sees them (no decryption)."""
    with store.reader.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events")).all()
        rows += conn.execute(text("SELECT * FROM audit_subject_keys")).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def clear_values(subject: str = SUBJECT, name: str = NAME) -> list[str]:
    return [subject, name, str(INCOME), "defaulted", json.dumps(subject)]


@pytest.fixture
def sent() -> list[Event[Any]]:
    return subject_events() + subject_events(OTHER, "Other Person") + lineage_flow()


@pytest.fixture
def store(new_url: Callable[[], str], sent: list[Event[Any]]) -> Iterator[SqlAuditStore]:  # noqa: F811
    store = open_store(new_url())
    AuditService(store).capture(captured(sent, topic="mixed"))  # 15 rows
    yield store
    store.dispose()


def payloads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(row["body"])["payload"] for row in rows if row["body"]]


def test_identifying_values_are_chained_only_as_ciphertext(store: SqlAuditStore) -> None:
    stored = everything_stored(store)
    for value in [*clear_values(), "Other Person", OTHER]:
        assert value not in stored, value
    assert "customer-9" not in stored  # lineage_flow's prediction names a subject too
    assert '"model_version":"3"' in stored and '"decision":"review"' in stored  # the rest stays readable
    with store.reader.connect() as conn:
        refs = set(conn.execute(select(subject_keys.c.subject_ref)).scalars())
    assert refs == {KEYS.ref(SUBJECT), KEYS.ref(OTHER), KEYS.ref("customer-9")}
    report = verify_store(store)
    assert report.ok and report.checked == 15


def test_queries_open_the_subject_rows_exactly_as_they_were_sent(
    store: SqlAuditStore, sent: list[Event[Any]]
) -> None:
    as_sent = {str(e.event_id): json.loads(encode_event(e)) for e in sent}
    rows = store.events(EventQuery(entity_id=SUBJECT))
    assert [r["event_type"] for r in rows] == [
        "RecordCleaned",
        "RecordRejected",
        "PredictionMade",
        "LabelObserved",
    ]
    for row in rows:
        assert row["entity_id"] == SUBJECT
        assert json.loads(row["body"]) == as_sent[row["event_id"]]
    [features] = store.events(EventQuery(event_type="FeaturesUpdated", limit=1))
    assert json.loads(features["body"]) == as_sent[features["event_id"]]
    assert store.events(EventQuery(entity_id=KEYS.ref(SUBJECT)))[0]["entity_id"] == SUBJECT


def test_erasure_leaves_nothing_readable_and_the_chain_intact(store: SqlAuditStore) -> None:
    erasure = AuditService(store).erase(SUBJECT, requested_by="dpo")
    assert (erasure.keys_deleted, erasure.seq, erasure.subject_ref) == (1, 16, KEYS.ref(SUBJECT))
    rows = store.events(EventQuery(entity_id=SUBJECT))
    assert [r["kind"] for r in rows] == ["event"] * 4 + ["erasure"]
    shown = json.dumps(rows, default=str)
    for value in clear_values():
        assert value not in shown, value
    assert all(set(p) >= {"sealed"} and "entity_id" not in p for p in payloads(rows))
    assert rows[-1]["entity_id"] == erasure.subject_ref and rows[-1]["note"] == "dpo"
    [features] = store.events(EventQuery(event_type="FeaturesUpdated", limit=1))
    ids = json.loads(features["body"])["payload"]["entity_ids"]
    assert ids[1] == OTHER and ids[0]["subject"] == erasure.subject_ref  # the other subject is unaffected
    assert [r["entity_id"] for r in store.events(EventQuery(entity_id=OTHER))] == [OTHER] * 4
    for value in clear_values():
        assert value not in everything_stored(store)
    assert KEYS.ref(SUBJECT) not in [r[0] for r in _key_rows(store)]
    report = verify_store(store)
    assert report.ok and report.checked == 16
    again = AuditService(store).erase(SUBJECT, requested_by="dpo")  # a repeated request is recorded too
    assert (again.keys_deleted, again.seq) == (0, 17) and verify_store(store).ok
    assert AuditService(store).summary()["erasures"] == 2


def test_an_event_of_before_the_erasure_arriving_after_it_is_shredded_on_arrival(
    store: SqlAuditStore,
) -> None:
    erased_at_us = AuditService(store).erase(SUBJECT, requested_by="dpo").erased_at_us
    late, fresh = subject_events()[3], subject_events()[4]
    before = Captured("late", 0, 0, erased_at_us // 1000 - 1, late.key(), encode_event(late))
    after = Captured("late", 0, 1, erased_at_us // 1000 + 1, fresh.key(), encode_event(fresh))
    AuditService(store).capture([before, after])
    rows = store.events(EventQuery(topic="late"))
    assert "entity_id" not in payloads(rows)[0] and SUBJECT not in rows[0]["body"]  # never readable
    assert payloads(rows)[1]["entity_id"] == SUBJECT  # the subject came back: new data, new key
    assert verify_store(store).ok


def test_sqlite_keeps_no_byte_of_an_erased_key(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditService(store).capture(captured(subject_events() + lineage_flow(), topic="mixed"))
    erased = {KEYS.ref(SUBJECT), KEYS.ref(OTHER)}  # customer-9's key stays: its page is not emptied
    wrapped = {bytes(key) for ref, key in _key_rows(store) if ref in erased}
    assert len(wrapped) == 2
    with store.reader.connect():  # a reader open meanwhile does not keep the key alive on disk
        AuditService(store).erase(SUBJECT, requested_by="dpo")
    AuditService(store).erase(OTHER, requested_by="dpo")
    files = list(tmp_path.glob("audit.db*"))
    assert {f.name for f in files} >= {"audit.db"}
    content = b"".join(f.read_bytes() for f in files)
    for key in wrapped:
        assert key not in content
    for value in clear_values():
        assert value.encode() not in content
    with sqlite3.connect(tmp_path / "audit.db") as conn:  # raw SQL, no store in between
        assert conn.execute("SELECT count(*) FROM audit_subject_keys").fetchone()[0] == 1
        assert (
            conn.execute("SELECT count(*) FROM audit_events WHERE body LIKE ?", (f"%{SUBJECT}%",)).fetchone()[
                0
            ]
            == 0
        )
    assert verify_store(store).ok
    store.dispose()


def test_a_token_moved_to_another_row_is_caught_and_never_opens(store: SqlAuditStore) -> None:
    with store.reader.connect() as conn:
        bodies = dict(conn.execute(text("SELECT seq, body FROM audit_events WHERE seq IN (1, 4)")).all())
    token = json.dumps(json.loads(bodies[1])["payload"]["sealed"])
    moved = json.loads(bodies[4])
    moved["payload"]["sealed"] = json.loads(token)  # row 1's token (same subject) into row 4
    as_attacker(store, f"UPDATE audit_events SET body = '{json.dumps(moved)}' WHERE seq = 4")
    report = verify_store(store)
    assert not report.ok and report.broken_at == 4
    [row] = store.events(EventQuery(after=3, limit=1))
    assert "entity_id" not in json.loads(row["body"])["payload"]  # bound to its own event id: stays shut


def test_a_store_without_the_subject_secret_refuses_identifying_data(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    bare = SqlAuditStore(store.url)
    with pytest.raises(SubjectSecretMissing):
        AuditService(bare).capture(captured(subject_events(), topic="mixed"))
    assert store.head()[0].length == 0
    AuditService(bare).capture(captured(lineage_flow()[:4], topic="flow"))  # nothing identifying: kept
    assert store.head()[0].length == 4
    bare.dispose()
    store.dispose()


HOSTILE_SUBJECTS: list[Any] = [
    "x" * 300,  # too long for the index column: still sealed
    "",  # empty
    12345,  # a number
    {"ssn": "987-65-4320"},  # an object
    ["987-65-4320"],
    "名前-😀",
]


@pytest.mark.parametrize("subject", HOSTILE_SUBJECTS, ids=repr)
def test_careless_subject_ids_and_envelopes_are_sealed_too(tmp_path: Path, subject: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    envelope = json.loads(encode_event(subject_events()[0]))
    envelope["payload"]["entity_id"] = subject
    envelope["payload"]["sealed"] = {"subject": "forged", "ciphertext": "AAAA"}  # a producer's own field
    envelope["payload"]["record"]["applicant"] = "Nan Value"
    value = json.dumps(envelope).replace('"income": 48213.77', '"income": NaN').encode()
    AuditService(store).capture([Captured("hostile", 0, 0, 1, b"987-65-4320", value)])
    stored = everything_stored(store)
    assert "Nan Value" not in stored and "987-65-4320" not in stored and "forged" not in stored
    [row] = store.events(EventQuery(topic="hostile"))
    opened = json.loads(row["body"])["payload"]
    assert opened["entity_id"] == subject and opened["sealed"]["subject"] == "forged"
    assert opened["record"]["applicant"] == "Nan Value"
    # Only json.loads reads NaN: it is sealed and opened back as NaN (msgspec would have written null).
    assert math.isnan(opened["record"]["income"])
    assert verify_store(store).ok
    store.dispose()


def test_raw_rows_keep_the_subject_reference_not_a_digest_of_its_id(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    audit = AuditService(store, content_free_topics=["records.raw"])
    audit.capture([Captured("records.raw", 0, 0, 1, SUBJECT.encode(), b'{"applicant": "Zed"}')])
    [row] = store.events(EventQuery(topic="records.raw"))
    assert row["key_sha256"] is None and row["entity_id"] == KEYS.ref(SUBJECT) and row["body"] is None
    assert [r["kind"] for r in store.events(EventQuery(entity_id=SUBJECT))] == ["raw"]
    store.dispose()


@pytest.fixture
def app_role(postgres_cluster: PostgresCluster) -> str:
    role = f"audit_app_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute(f"CREATE ROLE {role} LOGIN")
    return role


def test_the_application_role_may_erase_keys_but_still_not_touch_the_chain(
    postgres_url: str, app_role: str
) -> None:
    open_store(postgres_url, app_role).dispose()  # the owner migrates and grants
    as_role = make_url(postgres_url).set(username=app_role).render_as_string(hide_password=False)
    store = open_store(as_role, app_role)
    AuditService(store).capture(captured(subject_events(), topic="mixed"))
    assert AuditService(store).erase(SUBJECT, requested_by="dpo").keys_deleted == 1
    engine = create_engine(as_role, poolclass=NullPool)
    with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE kind = 'erasure'"))
    engine.dispose()
    assert verify_store(store).ok and store.head()[0].length == 6
    store.dispose()


def _key_rows(store: SqlAuditStore) -> list[tuple[Any, ...]]:
    with store.reader.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(subject_keys.c.subject_ref, subject_keys.c.wrapped_key))
        ]
