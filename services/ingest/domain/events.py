"""Outcome events, encoded straight to the contract's JSON (no pydantic round per record: that alone
would cost more than the rest of ingest). `tests/unit/test_ingest_events.py` proves the bytes parse as
the same `RecordCleaned` / `RecordRejected` that pydantic would build.

Event ids are uuid5 of the source coordinates, and `occurred_at` is the raw record's Kafka timestamp:
a redelivered raw record yields byte-identical outcome events, which downstream dedupes on event id.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec

from contracts.common import FieldError
from contracts.events import RecordCleaned, RecordRejected

NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4c1b-9a57-1d2f0c6b7e11")
_NAMESPACE_BYTES = NAMESPACE.bytes
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One encoded event, ready for Kafka."""

    topic: str
    key: bytes | None
    value: bytes
    event_type: str
    event_id: str
    code: str  # "ok" for a clean record, else the rejection code


def _iso(moment: datetime) -> str:
    """As pydantic writes an aware datetime: UTC as `Z`, other offsets as they are."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def event_id_for(dataset: str, source: Source) -> str:
    """`str(uuid.uuid5(NAMESPACE, name))`, without building a UUID object (a third of the cost of
    encoding a clean record); `tests/unit/test_ingest_events.py` checks they agree."""
    name = f"ingest/{dataset}/{source.topic}/{source.partition}/{source.offset}"
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=4096)
def _occurred_at(timestamp_ms: int) -> str:
    """Records fetched together mostly share a millisecond timestamp."""
    return _iso(datetime.fromtimestamp(max(timestamp_ms, 0) / 1000, UTC))


def _envelope(
    event_type: str, event_id: str, source: Source, producer: str, payload: dict[str, Any]
) -> bytes:
    occurred = _occurred_at(source.timestamp_ms)
    return _encode(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": occurred,
            "producer": producer,
            "correlation_id": event_id,
            "causation_id": None,
            "payload": payload,
        }
    )


def cleaned(
    dataset: str,
    source: Source,
    entity_id: str,
    event_time: datetime,
    record: dict[str, Any],
    scrubbed_fields: list[str],
    producer: str,
    topic: str = RecordCleaned.topic,
) -> OutMessage:
    event_id = event_id_for(dataset, source)
    payload = {
        "dataset": dataset,
        "entity_id": entity_id,
        "event_time": _iso(event_time),
        "record": record,
        "source": source.as_dict(),
        "scrubbed_fields": scrubbed_fields,
    }
    value = _envelope("RecordCleaned", event_id, source, producer, payload)
    return OutMessage(topic, entity_id.encode(), value, "RecordCleaned", event_id, "ok")


def rejected(
    dataset: str,
    source: Source,
    raw: bytes | None,
    code: str,
    message: str,
    errors: list[FieldError],
    entity_id: str | None,
    record: dict[str, Any] | None,
    producer: str,
    topic: str = RecordRejected.topic,
) -> OutMessage:
    event_id = event_id_for(dataset, source)
    value_bytes = raw or b""
    payload = {
        "dataset": dataset,
        "source": source.as_dict(),
        "reason": {"code": code, "message": message, "errors": [e.model_dump() for e in errors]},
        "entity_id": entity_id,
        "record": record,
        "raw_sha256": hashlib.sha256(value_bytes).hexdigest(),
        "raw_size": len(value_bytes),
    }
    value = _envelope("RecordRejected", event_id, source, producer, payload)
    key = entity_id.encode() if entity_id else None
    return OutMessage(topic, key, value, "RecordRejected", event_id, code)
