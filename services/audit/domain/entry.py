"""What one captured Kafka message becomes: an `Entry`, with the envelope's index fields pulled out.

Parsing is deliberately cheap (one JSON decode, a few type checks): the audit log must keep up with
the busiest topic, so it does not pay a full pydantic validation per event. The decode is msgspec's
(several times faster than `json.loads`, same objects for valid JSON); what it refuses is decoded again
by `json.loads`, so edge cases (NaN, huge integers, deep nesting) are classified exactly as before. A
message that is not a well-formed envelope is still recorded, as kind `undecodable`, with its digest,
size and coordinates.

An entry that names a data subject keeps its decoded envelope (`decoded`), so the store can seal the
identifying parts under the subject's key before chaining it (see domain/sealing.py). Its Kafka key
digest is left out when the key is the subject id itself: a plain SHA-256 of a short id is reversed
by guessing, and the value digest still ties the row to Kafka. On content-free topics the Kafka key is
taken as the subject id (`raw_subject`): the row keeps only the subject's keyed reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from services.audit.domain.sealing import subject_text, subjects

KIND_EVENT = "event"
KIND_RAW = "raw"
KIND_UNDECODABLE = "undecodable"
KIND_ERASURE = "erasure"
ERASURE_TOPIC = "audit:erasure"
"""Erasure rows are made by the audit service, not read from Kafka: a name Kafka cannot give a topic
(':' is not allowed), so no captured message ever shares their coordinates."""
ERASURE_EVENT_TYPE = "SubjectErased"

INDEX_MAX_CHARS = 256
"""Index values longer than this are left out of the index columns (the body still holds them)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAYLOAD_INDEX = ("entity_id", "model_name", "model_version", "prediction_id", "run_id")
_ENVELOPE_FIELDS = ("event_id", "event_type", "schema_version", "occurred_at_us", "producer",
                    "correlation_id", "causation_id", *_PAYLOAD_INDEX)  # fmt: skip
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_decode = msgspec.json.Decoder().decode
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class Captured:
    """One Kafka record as the audit service received it (nothing parsed)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row before it is placed in the chain (no sequence number, no hash yet)."""

    kind: str
    topic: str
    partition: int
    offset: int
    kafka_ts_ms: int
    key_sha256: str | None
    value_sha256: str
    size: int
    event_id: str | None = None
    event_type: str | None = None
    schema_version: int | None = None
    occurred_at_us: int | None = None
    producer: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    entity_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    prediction_id: str | None = None
    run_id: str | None = None
    note: str | None = None
    body: str | None = None
    decoded: Any = field(default=None, compare=False, repr=False)
    """The envelope, kept only when it names a data subject (the store seals it, then drops it)."""
    raw_subject: str | None = field(default=None, repr=False)  # never in a log line
    """Content-free rows: the Kafka key, taken as the subject id (the store keeps only its reference)."""
    loose_json: bool = field(default=False, compare=False, repr=False)
    """`decoded` came from `json.loads` (msgspec refused the bytes: NaN, 1e400, a lone surrogate), so
    it is written back with Python's json, which keeps what msgspec would turn into null."""

    def with_subject(self, entity_id: str | None, body: str | None) -> Entry:
        """This entry with the subject's reference and the sealed body in place, and nothing
        identifying kept (`decoded`, `raw_subject`). Spelled out: `dataclasses.replace` cost more than
        the AES-GCM of the row (tests/unit/test_audit_sealing.py holds it to `replace`)."""
        return Entry(
            self.kind, self.topic, self.partition, self.offset, self.kafka_ts_ms, self.key_sha256,
            self.value_sha256, self.size, self.event_id, self.event_type, self.schema_version,
            self.occurred_at_us, self.producer, self.correlation_id, self.causation_id, entity_id,
            self.model_name, self.model_version, self.prediction_id, self.run_id, self.note, body,
        )  # fmt: skip


def to_entry(message: Captured, *, store_body: bool = True) -> Entry:
    """`store_body=False` keeps only digests and coordinates (for topics that may carry PII)."""
    value = message.value or b""
    key = message.key
    key_sha = _sha256(key).hexdigest() if key is not None else None
    value_sha, size = _sha256(value).hexdigest(), len(value)
    topic, partition, offset, ts_ms = message.topic, message.partition, message.offset, message.timestamp_ms
    if not store_body:
        raw_subject = _key_text(key)
        return Entry(
            KIND_RAW, topic, partition, offset, ts_ms, None if raw_subject else key_sha, value_sha, size,
            occurred_at_us=ts_ms * 1000, raw_subject=raw_subject,
        )  # fmt: skip
    try:
        text = value.decode("utf-8")
        obj, loose = _loads(value, text)
        fields = _envelope_values(obj)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return Entry(KIND_UNDECODABLE, topic, partition, offset, ts_ms, key_sha, value_sha, size,
                     occurred_at_us=ts_ms * 1000, note=_reason(err))  # fmt: skip
    named = subjects(obj)
    if not named:
        return Entry(
            KIND_EVENT, topic, partition, offset, ts_ms, key_sha, value_sha, size, *fields, None, text
        )
    if key is not None and _key_text(key) in named:
        key_sha = None
    return Entry(KIND_EVENT, topic, partition, offset, ts_ms, key_sha, value_sha, size, *fields, None, text,
                 decoded=obj, loose_json=loose)  # fmt: skip


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return subject_text(key.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def _loads(value: bytes, text: str) -> tuple[Any, bool]:
    """The JSON value, and whether only `json.loads` read it."""
    try:
        return _decode(value), False
    except msgspec.DecodeError:  # let json.loads decide (and name) what msgspec refuses
        obj = json.loads(text)
    try:  # "\ud800" is valid JSON but no Unicode text: it could be neither sealed nor stored
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotUnicode("not_unicode") from None
    return obj, True


class NotAnEnvelope(ValueError):
    """The JSON is fine but it is not an event envelope."""


class NotUnicode(ValueError):
    """The JSON escapes a lone surrogate: valid JSON, but no Unicode text (the contracts refuse it too).
    Such an event once failed its whole batch on every retry (eight minutes of backoff) before it was
    dead-lettered; it is recorded as undecodable instead, as malformed JSON is."""


def envelope_fields(obj: Any) -> dict[str, Any]:
    """Index columns of an envelope; raises `NotAnEnvelope` when it is not one."""
    return dict(zip(_ENVELOPE_FIELDS, _envelope_values(obj), strict=True))


_Text = str | None
EnvelopeValues = tuple[str, _Text, int, int, _Text, _Text, _Text, _Text, _Text, _Text, _Text, _Text]


def _envelope_values(obj: Any) -> EnvelopeValues:
    """The values of `_ENVELOPE_FIELDS`, in that order (Entry's order too)."""
    if type(obj) is not dict:
        raise NotAnEnvelope("not_object")
    payload = obj.get("payload")
    version = obj.get("schema_version")
    # The column is a 32-bit INTEGER on PostgreSQL (and SQLite stops at 64 bits): a version past it
    # failed the insert, and the batch, on every retry.
    if type(payload) is not dict or type(version) is not int or not _INT32_MIN <= version <= _INT32_MAX:
        raise NotAnEnvelope("not_envelope")
    get = payload.get
    return (
        _uuid(obj.get("event_id")),
        _text(obj.get("event_type"), required=True),
        version,
        _micros(obj.get("occurred_at")),
        _text(obj.get("producer"), required=True),
        _text(obj.get("correlation_id"), required=True),
        _text(obj.get("causation_id")),
        _index(get("entity_id")),
        _index(get("model_name")),
        _index(get("model_version")),
        _index(get("prediction_id")),
        _index(get("run_id")),
    )


def _reason(err: Exception) -> str:
    if isinstance(err, NotAnEnvelope | NotUnicode):
        return str(err)
    return "not_utf8" if isinstance(err, UnicodeDecodeError) else "not_json"


def _uuid(value: Any) -> str:
    if type(value) is str and _CANONICAL_UUID.match(value):  # already in the form str(UUID(...)) gives
        return value
    if not isinstance(value, str):
        raise NotAnEnvelope("not_envelope")
    try:
        return str(UUID(value))
    except ValueError:
        raise NotAnEnvelope("not_envelope") from None


def _text(value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > INDEX_MAX_CHARS or "\x00" in value:
        raise NotAnEnvelope("not_envelope")  # NUL: PostgreSQL's text refuses it (the insert failed)
    return value


def _micros(value: Any) -> int:
    if not isinstance(value, str):
        raise NotAnEnvelope("not_envelope")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise NotAnEnvelope("not_envelope") from None
    if moment.tzinfo is None:
        raise NotAnEnvelope("not_envelope")
    return to_micros(moment)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact: no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _index(value: Any) -> str | None:
    """An index column's text, or None (unindexed: the body keeps the value) when it is too long or
    holds a NUL, which PostgreSQL's text refuses."""
    if type(value) is str:  # the common case, first
        return value if 0 < len(value) <= INDEX_MAX_CHARS and "\x00" not in value else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= INDEX_MAX_CHARS else None


def erasure_entry(subject_ref: str, requested_by: str, request_id: str, now_us: int, position: int) -> Entry:
    """The chained record of one erasure: the subject's reference, never its id. `position` (the
    sequence number the row will take) makes its coordinates unique. Its digest is over the facts it
    states, `SubjectErased|<ref>|<requested by>|<time in us>`, so the row can be re-derived."""
    requested_by = requested_by[:64]
    facts = f"{ERASURE_EVENT_TYPE}|{subject_ref}|{requested_by}|{now_us}".encode()
    digest = _sha256(facts).hexdigest()
    return Entry(
        KIND_ERASURE, ERASURE_TOPIC, 0, position, now_us // 1000, None, digest, len(facts),
        event_id=request_id, event_type=ERASURE_EVENT_TYPE, schema_version=1, occurred_at_us=now_us,
        producer="audit", correlation_id=request_id, entity_id=subject_ref, note=requested_by,
    )  # fmt: skip
