"""The hash chain: each row's hash covers the previous row's hash, the row's canonical fields and the
event body, so an edited, deleted, inserted or swapped row breaks the chain at the first row it touches.

Canonical form (documented in docs/audit.md, reproducible in any language):

    canonical(n) = JSON array of the CHAIN_FIELDS values of row n, in that order, with no whitespace and
                   every non-ASCII character escaped as \\uXXXX (Python: json separators (",", ":"),
                   ensure_ascii): integers in decimal, absent values as null, strings as JSON strings.
    row_hash(n)  = sha256(row_hash_bytes(n - 1) || canonical(n) || body_utf8(n)), row_hash_bytes(0) = 32 zero
                   bytes, body_utf8 empty for rows without a body (the array is self-delimiting, and
                   `size` fixes the body's length).

`value_sha256` is the SHA-256 of the exact Kafka value, so a row can also be checked against Kafka.
Rewriting the whole chain after an edit is caught only against a published checkpoint (`anchors`).
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.audit.domain.entry import KIND_EVENT, Entry

CHAIN_FIELDS = (
    "seq",
    "kind",
    "topic",
    "partition",
    "offset",
    "kafka_ts_ms",
    "key_sha256",
    "value_sha256",
    "size",
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at_us",
    "producer",
    "correlation_id",
    "causation_id",
    "entity_id",
    "model_name",
    "model_version",
    "prediction_id",
    "run_id",
    "note",
    "recorded_at_us",
)
ROW_FIELDS = (*CHAIN_FIELDS, "body", "row_hash")
"""The order in which verify expects a row's values: chained fields, then body, then stored hash."""

GENESIS = bytes(32)
_N = len(CHAIN_FIELDS)
_KIND, _BODY, _HASH = 1, _N, _N + 1
_entry_fields = operator.attrgetter(*CHAIN_FIELDS[1:-1])  # what an Entry holds, in chain order
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _canonical_encoder() -> Callable[[Any], str]:
    """`_json.encode`, without rebuilding the C encoder on every call: the same C encoder that
    `JSONEncoder.encode` builds, made once (a flat array needs no circular-reference markers). Falls
    back to `_json.encode` where the C accelerator is missing. Same output, byte for byte."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _json.encode
    encoder = make(
        None, _json.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(values: Any) -> str:
        return join(encoder(values, 0))

    return encode


_encode = _canonical_encoder()


def canonical(fields: Sequence[Any]) -> bytes:
    """Canonical bytes of one row's CHAIN_FIELDS values."""
    return _encode(tuple(fields[:_N])).encode("ascii")


def link(prev_hash: bytes, fields: Sequence[Any], body: str | None) -> bytes:
    """The hash of a row whose CHAIN_FIELDS values are `fields`, placed after `prev_hash`."""
    tail = body.encode("utf-8") if body is not None else b""
    return hashlib.sha256(prev_hash + canonical(fields) + tail).digest()


@dataclass(frozen=True)
class Head:
    """The end of the chain: its length and the hash of its last row."""

    length: int
    hash: bytes

    @classmethod
    def empty(cls) -> Head:
        return cls(0, GENESIS)

    @classmethod
    def of(cls, length: int, hex_hash: str | None) -> Head:
        return cls(length, bytes.fromhex(hex_hash)) if hex_hash else cls.empty()


def extend(head: Head, entries: Iterable[Entry], recorded_at_us: int) -> tuple[list[tuple[Any, ...]], Head]:
    """Place entries after `head`: the rows (ROW_FIELDS order, hash as hex) and the new head."""
    rows: list[tuple[Any, ...]] = []
    seq, prev = head.length, head.hash
    for entry in entries:
        seq += 1
        fields = (seq, *_entry_fields(entry), recorded_at_us)
        prev = link(prev, fields, entry.body)
        rows.append((*fields, entry.body, prev.hex()))
    return rows, Head(seq, prev)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    """Rows whose link was recomputed and found intact."""
    head_hash: str
    """Hash of the last intact row (of the whole chain when ok)."""
    broken_at: int | None = None
    """Sequence number where the chain first breaks: the first row that is wrong or missing."""
    reason: str | None = None
    anchors_checked: int = 0
    """Checkpoints (chain length, head hash) that were compared with the recomputed chain."""


def verify(rows: Iterable[Sequence[Any]], anchors: Mapping[int, str] | None = None) -> VerifyReport:
    """Recompute the chain over all rows in sequence order (ROW_FIELDS order); report the first broken
    link. `anchors` maps a chain length to the head hash a checkpoint published at that length."""
    anchors = anchors or {}
    report = verify_links(rows, first=1, prev=GENESIS, anchors=anchors)
    beyond = [length for length in anchors if length > report.checked]
    if report.ok and beyond:
        reason = f"chain ends at {report.checked} rows but a checkpoint covers {max(beyond)}"
        return VerifyReport(
            False, report.checked, report.head_hash, report.checked + 1, reason, report.anchors_checked
        )
    return report


def verify_links(
    rows: Iterable[Sequence[Any]], *, first: int, prev: bytes, anchors: Mapping[int, str]
) -> VerifyReport:
    """Check the links of consecutive rows starting at sequence number `first`, whose predecessor's hash
    is `prev`. Each link depends only on the stored hash before it, so ranges can be checked in parallel."""
    sha256, encode, event = hashlib.sha256, _encode, KIND_EVENT
    expected, matched = first, 0

    def broken(reason: str) -> VerifyReport:
        return VerifyReport(False, expected - first, prev.hex(), expected, reason, matched)

    for row in rows:
        if row[0] != expected:
            return broken(f"sequence gap: expected row {expected}, found row {row[0]}")
        body = row[_BODY]
        if (body is None) == (row[_KIND] == event):
            return broken("body present or absent against the row's kind")
        try:
            tail = body.encode("utf-8") if body is not None else b""
            digest = sha256(prev + encode(row[:_N]).encode("ascii") + tail).digest()
        except (AttributeError, TypeError, ValueError):  # a value of a type the writer never stores
            return broken("row holds a value of an unexpected type")
        if digest.hex() != row[_HASH]:
            return broken("row hash does not match the recomputed chain")
        if expected in anchors:
            if anchors[expected] != row[_HASH]:
                return broken("chain differs from the published checkpoint at this length")
            matched += 1
        prev = digest
        expected += 1
    return VerifyReport(True, expected - first, prev.hex(), anchors_checked=matched)
