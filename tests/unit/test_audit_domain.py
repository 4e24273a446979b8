"""Audit domain: what a message becomes, the canonical form, and verification of the hash chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from contracts.registry import encode_event
from contracts.samples import sample_events
from services.audit.domain.chain import CHAIN_FIELDS, GENESIS, Head, canonical, extend, verify
from services.audit.domain.entry import KIND_EVENT, KIND_RAW, KIND_UNDECODABLE, Captured, to_entry
from tests.unit.test_audit_support import captured, lineage_flow


def test_every_contract_event_is_recorded_with_its_index_fields() -> None:
    for message, event in zip(captured(sample_events()), sample_events(), strict=True):
        entry = to_entry(message)
        assert entry.kind == KIND_EVENT and entry.body == encode_event(event).decode()
        assert entry.event_id == str(event.event_id) and entry.event_type == event.event_type
        assert entry.correlation_id == event.correlation_id and entry.producer == "samples"
        assert entry.value_sha256 == hashlib.sha256(encode_event(event)).hexdigest()
    prediction = to_entry(captured(lineage_flow())[-1])
    assert (prediction.prediction_id, prediction.entity_id, prediction.model_version) == (
        "pred-42",
        "customer-9",
        "7",
    )


def test_a_content_free_topic_keeps_only_digests_and_coordinates() -> None:
    message = Captured("records.raw", 2, 9, 1000, b"alice", b'{"email": "alice@example.com"}')
    entry = to_entry(message, store_body=False)
    assert entry.kind == KIND_RAW and entry.body is None and entry.size == 30
    # The raw key is the subject's id: only its keyed reference is kept (by the store), no bare digest.
    assert entry.key_sha256 is None and entry.raw_subject == "alice"
    assert "alice" not in json.dumps(entry.__repr__())


@pytest.mark.parametrize(
    ("value", "note"),
    [
        (b"\xff\xfe", "not_utf8"),
        (b"{not json", "not_json"),
        (b"", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"event_type": "X"}', "not_envelope"),
        (b'{"event_id": "nope", "event_type": "X", "schema_version": 1, "payload": {}}', "not_envelope"),
        (b'{"event_type": "X", "payload": {"note": "\\udc00 lone"}}', "not_unicode"),  # a lone surrogate
    ],
)
def test_a_message_that_is_not_an_envelope_is_still_recorded(value: bytes, note: str) -> None:
    entry = to_entry(Captured("drift.detected", 0, 5, 1000, None, value))
    assert entry.kind == KIND_UNDECODABLE and entry.note == note and entry.body is None
    assert entry.value_sha256 == hashlib.sha256(value).hexdigest() and entry.size == len(value)


def test_a_naive_time_or_a_huge_index_value_makes_an_envelope_undecodable_or_unindexed() -> None:
    event = json.loads(encode_event(lineage_flow()[-1]))
    naive = {**event, "occurred_at": "2025-01-02T03:04:05"}
    assert to_entry(Captured("t", 0, 0, 0, None, json.dumps(naive).encode())).kind == KIND_UNDECODABLE
    event["payload"]["entity_id"] = "x" * 300
    assert to_entry(Captured("t", 0, 0, 0, None, json.dumps(event).encode())).entity_id is None


def test_the_canonical_form_is_a_compact_ascii_json_array_of_the_chain_fields() -> None:
    fields = (1, "event", "t", 0, 7, 1000, None, "ab", 2, None, "Caf\u00e9", 1, 5, "p", "c", None,
              None, None, None, None, None, None, 9)  # fmt: skip
    assert len(fields) == len(CHAIN_FIELDS)
    assert canonical(fields) == b'[1,"event","t",0,7,1000,null,"ab",2,null,"Caf\\u00e9",1,5,"p","c",null,' \
        b"null,null,null,null,null,null,9]"  # fmt: skip


def rows_of(count: int = 6) -> list[tuple[object, ...]]:
    entries = [to_entry(m) for m in captured(lineage_flow() + lineage_flow("pred-43", version="8"))]
    rows, head = extend(Head.empty(), entries[:count], recorded_at_us=123)
    assert head.length == count
    return rows


def test_an_untouched_chain_verifies_and_links_to_the_genesis() -> None:
    rows = rows_of()
    report = verify(rows)
    assert report.ok and report.checked == 6 and report.head_hash == rows[-1][-1]
    first = hashlib.sha256(GENESIS + canonical(rows[0]) + str(rows[0][-2]).encode()).hexdigest()
    assert rows[0][-1] == first


def _edit(row: tuple[object, ...], index: int, value: object) -> tuple[object, ...]:
    return (*row[:index], value, *row[index + 1 :])


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        (lambda r: [*r[:2], _edit(r[2], CHAIN_FIELDS.index("entity_id"), "someone-else"), *r[3:]], 3),
        (
            lambda r: [
                *r[:3],
                _edit(r[3], len(CHAIN_FIELDS), r[3][len(CHAIN_FIELDS)].replace("7", "9")),
                *r[4:],
            ],
            4,
        ),
        (lambda r: [*r[:1], *r[2:]], 2),  # deleted
        (lambda r: [*r[:2], _edit(r[1], 0, 3), *r[2:]], 3),  # a copy inserted with the next number
        (lambda r: [r[0], _edit(r[2], 0, 2), _edit(r[1], 0, 3), *r[3:]], 2),  # swapped
        (lambda r: [*r[:4], _edit(r[4], len(CHAIN_FIELDS), None)], 5),  # body removed
    ],
    ids=["updated", "body-edited", "deleted", "inserted", "swapped", "body-removed"],
)
def test_every_kind_of_tampering_breaks_the_chain_at_the_first_touched_row(tamper, broken_at) -> None:  # type: ignore[no-untyped-def]
    report = verify(tamper(rows_of()))
    assert not report.ok and report.broken_at == broken_at and report.checked == broken_at - 1


def test_a_rewritten_or_truncated_chain_is_caught_against_a_checkpoint() -> None:
    rows = rows_of()
    anchors = {4: str(rows[3][-1])}
    assert verify(rows, anchors).anchors_checked == 1
    forged_entries = [to_entry(m) for m in captured(lineage_flow("forged"))]
    forged, _ = extend(Head.empty(), [replace(e, producer="x") for e in forged_entries] + [], 123)
    report = verify(forged, anchors)  # self-consistent, but not the chain that was published
    assert not report.ok and report.broken_at == 4 and "checkpoint" in (report.reason or "")
    truncated = verify(rows[:3], anchors)
    assert not truncated.ok and truncated.broken_at == 4


def test_a_value_of_a_foreign_type_is_reported_not_raised() -> None:
    rows = rows_of()
    rows[1] = _edit(rows[1], CHAIN_FIELDS.index("topic"), b"\x00blob")
    assert verify(rows).broken_at == 2
