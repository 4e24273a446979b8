"""The pure sealing rules (domain/sealing.py): what is sealed per event type, and that a token opens only
with its own subject's key, in its own row, unaltered."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from contracts.registry import encode_event
from services.audit.domain import sealing
from tests.unit.test_audit_erasure import OTHER, SUBJECT, subject_events

KEYS = {SUBJECT: sealing.new_key(), OTHER: sealing.new_key()}


def ref(subject: str) -> str:
    return subject  # the identity as a reference keeps these tests about sealing, not about HMACs


def envelopes() -> dict[str, dict[str, Any]]:
    return {e.event_type: json.loads(encode_event(e)) for e in subject_events()}


@pytest.mark.parametrize(
    ("event_type", "sealed", "kept"),
    [
        ("RecordCleaned", {"entity_id", "record", "event_time"}, {"dataset", "source", "scrubbed_fields"}),
        (
            "RecordRejected",
            {"entity_id", "record"},
            {"dataset", "source", "reason", "raw_sha256", "raw_size"},
        ),
        (
            "PredictionMade",
            {"entity_id", "features"},
            {"prediction_id", "model_version", "score", "decision"},
        ),
        ("LabelObserved", {"entity_id", "label", "event_time"}, {"dataset", "prediction_id"}),
    ],
)
def test_each_type_seals_what_identifies_and_keeps_the_rest(
    event_type: str, sealed: set[str], kept: set[str]
) -> None:
    envelope = envelopes()[event_type]
    payload = sealing.seal(envelope, ref, KEYS.__getitem__)["payload"]
    assert not sealed & set(payload) and kept <= set(payload)
    assert payload["sealed"]["subject"] == SUBJECT
    assert all(payload[name] == envelope["payload"][name] for name in kept)
    assert sealing.open_sealed(sealing.seal(envelope, ref, KEYS.__getitem__), KEYS) == envelope


def test_every_id_of_a_features_update_is_sealed_under_its_own_subject() -> None:
    envelope = envelopes()["FeaturesUpdated"]
    sealed = sealing.seal(envelope, ref, KEYS.__getitem__)
    assert [t["subject"] for t in sealed["payload"]["entity_ids"]] == [SUBJECT, OTHER]
    only_other = sealing.open_sealed(sealed, {OTHER: KEYS[OTHER]})["payload"]["entity_ids"]
    assert only_other[0]["subject"] == SUBJECT and only_other[1] == OTHER
    assert sorted(sealing.token_subjects(sealed)) == sorted([SUBJECT, OTHER])


def test_a_token_opens_only_with_its_key_in_its_row_unaltered() -> None:
    envelope = envelopes()["PredictionMade"]
    sealed = sealing.seal(envelope, ref, KEYS.__getitem__)
    assert sealing.open_sealed(sealed, {SUBJECT: KEYS[OTHER]}) == sealed  # another subject's key
    assert sealing.open_sealed(sealed, {}) == sealed  # erased
    moved = {**copy.deepcopy(sealed), "event_id": envelopes()["LabelObserved"]["event_id"]}
    assert sealing.open_sealed(moved, KEYS) == moved  # bound to its event id
    flipped = copy.deepcopy(sealed)
    raw = bytearray(base64.b64decode(flipped["payload"]["sealed"]["ciphertext"]))
    raw[-1] ^= 1
    flipped["payload"]["sealed"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    assert sealing.open_sealed(flipped, KEYS) == flipped  # altered
    for junk in ("not base64!", "", 5, None):
        broken = copy.deepcopy(sealed)
        broken["payload"]["sealed"]["ciphertext"] = junk
        assert sealing.open_sealed(broken, KEYS) == broken


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"entity_id": "a"}, ["a"]),
        ({"entity_id": 7}, ["7"]),
        ({"entity_id": {"b": 1, "a": 2}}, ['{"a":2,"b":1}']),
        ({"entity_id": None, "entity_ids": ["x", None, 3]}, ["x", "3"]),
        ({"entity_ids": "solo"}, ["solo"]),
        ({"model_name": "m"}, []),
    ],
)
def test_the_subjects_an_envelope_names(payload: dict[str, Any], expected: list[str]) -> None:
    assert sealing.subjects({"payload": payload}) == expected
    assert sealing.subjects({"payload": "not an object"}) == [] and sealing.subjects([1]) == []


def test_with_subject_is_replace_with_nothing_identifying_left() -> None:
    # Spelled out for speed: a field added to Entry and forgotten there would be dropped from the row.
    from dataclasses import fields, replace

    from services.audit.domain.entry import Entry

    values: dict[str, Any] = {f.name: f"v-{f.name}" for f in fields(Entry)}
    values.update(partition=1, offset=2, kafka_ts_ms=3, size=4, schema_version=5, occurred_at_us=6)
    entry = Entry(**values)
    sealed = entry.with_subject("ref-1", "{}")
    assert sealed == replace(entry, entity_id="ref-1", body="{}", decoded=None, raw_subject=None)
    assert sealed.decoded is None and sealed.raw_subject is None
    kept = {f.name for f in fields(Entry)} - {"entity_id", "body", "decoded", "raw_subject", "loose_json"}
    assert all(getattr(sealed, name) == getattr(entry, name) for name in kept)
