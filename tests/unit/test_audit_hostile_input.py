"""What a careless or hostile producer sends the audit, that once failed the insert and so its whole
batch on every retry (100 attempts, backoff up to 5 s: minutes of a stalled trail) before the batch
was cut down to the one record and dead-lettered, never chained: each is now recorded as
undecodable (or, for a value that is only indexed, unindexed), with its coordinates, digests and reason,
and its neighbours are appended. And odd values the fast path seals (msgspec's encoder) open to the very
values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.registry import encode_event
from services.audit.adapters.query import EventQuery
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.verification import verify_store
from tests.unit.test_audit_erasure import OTHER, everything_stored, subject_events
from tests.unit.test_audit_store import new_url  # noqa: F401  (the two-backend fixture)
from tests.unit.test_audit_support import lineage_flow, open_store


@pytest.mark.parametrize("version", [2**31, -(2**31) - 1, 2**70])
def test_a_schema_version_no_integer_column_holds_is_recorded_undecodable(
    new_url: Callable[[], str],  # noqa: F811
    version: int,
) -> None:
    # A 32-bit INTEGER on PostgreSQL, 64 bits on SQLite: past them the insert failed.
    store = open_store(new_url())
    event = json.loads(encode_event(lineage_flow()[-1]))
    hostile = json.dumps({**event, "schema_version": version, "event_id": str(uuid.uuid4())}).encode()
    fine = encode_event(lineage_flow("pred-9")[-1])
    result = AuditService(store).capture(
        [Captured("hostile", 0, 0, 1, None, hostile), Captured("hostile", 0, 1, 1, None, fine)]
    )
    assert result.appended == 2 and result.undecodable == {"hostile": 1}
    rows = store.events(EventQuery(topic="hostile"))
    assert [(r["kind"], r["note"], r["schema_version"]) for r in rows] == [
        ("undecodable", "not_envelope", None), ("event", None, 1)
    ]  # fmt: skip
    assert verify_store(store).ok
    store.dispose()


@pytest.mark.parametrize(
    ("field", "kind", "note"),
    [("producer", "undecodable", "not_envelope"), ("event_type", "undecodable", "not_envelope"),
     ("causation_id", "undecodable", "not_envelope"), ("model_version", "event", None),
     ("body", "event", None)],
)  # fmt: skip
def test_a_nul_character_is_never_handed_to_a_text_column(
    new_url: Callable[[], str],  # noqa: F811
    field: str,
    kind: str,
    note: str | None,
) -> None:
    # PostgreSQL's text refuses NUL: an envelope field with one failed the insert. An index value with
    # one is left unindexed (its body keeps it); the body's JSON escapes it as \u0000.
    store = open_store(new_url())
    event = {**json.loads(encode_event(lineage_flow()[-1])), "event_id": str(uuid.uuid4())}
    if field in ("producer", "event_type", "causation_id"):
        event[field] = "x\x00y"
    else:
        event["payload"]["model_version" if field == "model_version" else "note"] = "7\x00; DROP TABLE"
    fine = encode_event(lineage_flow("pred-9")[-1])
    AuditService(store).capture(
        [
            Captured("hostile", 0, 0, 1, None, json.dumps(event).encode()),
            Captured("hostile", 0, 1, 1, None, fine),
        ]
    )
    rows = store.events(EventQuery(topic="hostile"))
    assert [(r["kind"], r["note"]) for r in rows] == [(kind, note), ("event", None)]
    if kind == "event":
        assert rows[0]["model_version"] == (None if field == "model_version" else "7")
        assert json.loads(rows[0]["body"]) == event
    assert verify_store(store).ok
    store.dispose()


@pytest.mark.parametrize("names_a_subject", [True, False])
def test_a_lone_surrogate_is_recorded_undecodable_and_its_neighbours_go_on(
    tmp_path: Path, names_a_subject: bool
) -> None:
    # Valid JSON, no Unicode text: it once failed its whole batch on every retry (minutes of backoff).
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    envelope = json.loads(encode_event(subject_events()[0]))
    if not names_a_subject:
        envelope["payload"]["entity_id"] = None
    hostile = json.dumps(envelope).replace('"applicant": "', '"applicant": "\\ud800 ').encode()
    good = [encode_event(event) for event in subject_events(OTHER)[:2]]
    messages = [
        Captured("records.clean", 0, i, 1, None, value) for i, value in enumerate([good[0], hostile, good[1]])
    ]
    result = AuditService(store).capture(messages)
    assert result.appended == 3 and result.undecodable == {"records.clean": 1}
    kinds = [
        (row["offset"], row["kind"], row["note"]) for row in store.events(EventQuery(topic="records.clean"))
    ]
    assert kinds == [(0, "event", None), (1, "undecodable", "not_unicode"), (2, "event", None)]
    assert "Zoë" not in everything_stored(store) and verify_store(store).ok
    store.dispose()


def test_values_msgspec_reads_come_back_from_their_seal_unchanged(tmp_path: Path) -> None:
    # The fast path seals and stores with msgspec's encoder: what it writes must open to the very values.
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    envelope = json.loads(encode_event(subject_events()[0]))
    odd = {
        "tiny": 1e-05,
        "huge": 1e300,
        "big": 2**64,
        "neg": -(2**63),
        "text": "Zoë\u2028名前\x00😀",
        "none": None,
    }
    envelope["payload"]["record"].update(odd)
    AuditService(store).capture([Captured("records.clean", 0, 0, 1, None, json.dumps(envelope).encode())])
    [row] = store.events(EventQuery(topic="records.clean"))
    assert json.loads(row["body"]) == envelope and "Zoë" not in everything_stored(store)
    assert verify_store(store).ok
    store.dispose()
