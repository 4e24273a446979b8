"""What one captured Kafka message becomes: an `Entry`, with the envelope's index fields pulled out.

Parsing is deliberately cheap (one `json.loads`, a few type checks): the audit log must keep up with
the busiest topic, so it does not pay a full pydantic validation per event. A message that is not a
well-formed envelope is still recorded, as kind `undecodable`, with its digest, size and coordinates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

KIND_EVENT = "event"
KIND_RAW = "raw"
KIND_UNDECODABLE = "undecodable"

INDEX_MAX_CHARS = 256
"""Index values longer than this are left out of the index columns (the body still holds them)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAYLOAD_INDEX = ("entity_id", "model_name", "model_version", "prediction_id", "run_id")


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


def to_entry(message: Captured, *, store_body: bool = True) -> Entry:
    """`store_body=False` keeps only digests and coordinates (for topics that may carry PII)."""
    value = message.value or b""
    common: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "kafka_ts_ms": message.timestamp_ms,
        "key_sha256": hashlib.sha256(message.key).hexdigest() if message.key is not None else None,
        "value_sha256": hashlib.sha256(value).hexdigest(),
        "size": len(value),
        "occurred_at_us": message.timestamp_ms * 1000,  # replaced by the envelope's time when there is one
    }
    if not store_body:
        return Entry(kind=KIND_RAW, **common)
    try:
        text = value.decode("utf-8")
        fields = envelope_fields(json.loads(text))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return Entry(kind=KIND_UNDECODABLE, note=_reason(err), **common)
    return Entry(kind=KIND_EVENT, body=text, **{**common, **fields})


class NotAnEnvelope(ValueError):
    """The JSON is fine but it is not an event envelope."""


def envelope_fields(obj: Any) -> dict[str, Any]:
    """Index columns of an envelope; raises `NotAnEnvelope` when it is not one."""
    if not isinstance(obj, dict):
        raise NotAnEnvelope("not_object")
    payload = obj.get("payload")
    version = obj.get("schema_version")
    if not isinstance(payload, dict) or not isinstance(version, int) or isinstance(version, bool):
        raise NotAnEnvelope("not_envelope")
    fields: dict[str, Any] = {
        "event_id": _uuid(obj.get("event_id")),
        "event_type": _text(obj.get("event_type"), required=True),
        "schema_version": version,
        "occurred_at_us": _micros(obj.get("occurred_at")),
        "producer": _text(obj.get("producer"), required=True),
        "correlation_id": _text(obj.get("correlation_id"), required=True),
        "causation_id": _text(obj.get("causation_id")),
    }
    for name in _PAYLOAD_INDEX:
        fields[name] = _index(payload.get(name))
    return fields


def _reason(err: Exception) -> str:
    if isinstance(err, NotAnEnvelope):
        return str(err)
    return "not_utf8" if isinstance(err, UnicodeDecodeError) else "not_json"


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise NotAnEnvelope("not_envelope")
    try:
        return str(UUID(value))
    except ValueError:
        raise NotAnEnvelope("not_envelope") from None


def _text(value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > INDEX_MAX_CHARS:
        raise NotAnEnvelope("not_envelope")
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
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= INDEX_MAX_CHARS else None
