"""Anchors held outside the database, judged without I/O: the signed checkpoints a chain published, and
the Kafka log each stored row claims to come from.

- `judge_checkpoints` keeps the checkpoints of one chain whose signature verifies (length -> head hash,
  and the genesis they name) and lists the ones that claim the chain but do not verify.
- `compare_partition` walks one partition's stored rows and its Kafka records together, in offset
  order: a row must match the record at its coordinates (value and key digests), must not claim an
  offset the log never held, and rows must be in offset order along the chain; a record the audit
  consumer group committed past must be in the store (unless its event id is stored at other
  coordinates: a producer's retry, which the store records once).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from contracts.events import AuditCheckpointedPayload
from services.audit.domain.entry import envelope_fields
from services.audit.domain.sealing import ALWAYS_SEALED, MANY_SUBJECTS, SEALED, SEALED_BY_TYPE, subject_text

MAX_PROBLEMS_PER_PARTITION = 20  # a wholesale rewrite is reported, not listed row by row
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class PublishedCheckpoint:
    payload: AuditCheckpointedPayload
    where: str
    """Kafka coordinates of the checkpoint (topic:partition:offset), for the report."""


@dataclass
class CheckpointFindings:
    anchors: dict[int, str] = field(default_factory=dict)
    """Chain length -> head hash, from trusted checkpoints of this chain."""
    genesis: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    ignored: int = 0
    """Checkpoints of other chains, and unsigned ones from before checkpoints were signed."""

    @property
    def last_length(self) -> int | None:
        return max(self.anchors) if self.anchors else None


def judge_checkpoints(
    checkpoints: Iterable[PublishedCheckpoint],
    chain_name: str,
    verifies: Callable[[AuditCheckpointedPayload], bool],
) -> CheckpointFindings:
    found = CheckpointFindings()
    for checkpoint in checkpoints:
        payload = checkpoint.payload
        if payload.chain_name != chain_name:
            found.ignored += 1
            continue
        if not verifies(payload):
            found.problems.append(f"checkpoint at {checkpoint.where} claims chain {chain_name!r} but its "
                                  f"signature does not verify under a trusted key")  # fmt: skip
            continue
        known = found.anchors.setdefault(payload.chain_length, payload.head_hash)
        if known != payload.head_hash:
            found.problems.append(f"two signed checkpoints disagree at length {payload.chain_length}")
        if payload.genesis_hash:
            found.genesis.add(payload.genesis_hash)
    if len(found.genesis) > 1:
        found.problems.append(f"signed checkpoints name {len(found.genesis)} different genesis rows")
    return found


SHOWN = ("event_id", "event_type", "producer", "model_name", "model_version", "prediction_id", "run_id")
"""Index columns an auditor filters by; for an event row each must agree with the Kafka record's envelope."""


@dataclass(frozen=True)
class StoredCoordinate:
    seq: int
    offset: int
    key_sha256: str | None
    value_sha256: str
    body: str | None = None
    shown: tuple[str | None, ...] = ()
    """The row's SHOWN columns, in that order (event rows)."""


@dataclass(frozen=True)
class LogRecord:
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class PartitionLog:
    start: int
    """First offset still in the log (retention removed what is below)."""
    end: int
    """Offset the next record will get, read after the chain's head."""
    committed: int | None = None
    """Offset the audit consumer group committed (every record below it was stored first)."""
    read_until: int | None = None
    """Offset below which the records were read (`end` when None): the store's last offset, read after
    the head, or the committed offset if higher. A row past it arrived while verify ran, unless its
    sequence number shows it was in the chain when the head was read."""

    @property
    def compared_until(self) -> int:
        return self.end if self.read_until is None else min(self.read_until, self.end)


@dataclass
class PartitionFindings:
    checked: int = 0
    expired: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS_PER_PARTITION:
            self.problems.append(problem)
        else:
            self.more_problems += 1


def compare_partition(
    name: str,
    rows: Iterable[StoredCoordinate],
    records: Iterable[LogRecord],
    log: PartitionLog,
    head: int,
    stored_elsewhere: Callable[[LogRecord], bool],
) -> PartitionFindings:
    """`rows` and `records` in offset order; rows with `seq > head` arrived after the head was read."""
    found = PartitionFindings()
    pending = iter(records)
    record = next(pending, None)
    last_seq = 0

    def unstored(record: LogRecord) -> None:
        if log.committed is not None and record.offset < log.committed and not stored_elsewhere(record):
            found.add(f"{name}@{record.offset}: in Kafka and committed by the audit group, not in the store")

    for row in rows:
        if row.seq <= last_seq:
            found.add(f"row {row.seq} ({name}@{row.offset}) comes before row {last_seq}, an earlier offset")
        last_seq = max(last_seq, row.seq)
        if row.offset < log.start:
            found.expired += 1
            continue
        while record is not None and record.offset < row.offset:
            unstored(record)
            record = next(pending, None)
        if record is None or record.offset != row.offset:
            if row.offset < log.compared_until or row.seq <= head:
                found.add(f"row {row.seq} claims {name}@{row.offset}, which Kafka never held")
            continue
        # A row may leave out the key's digest (when the key is a data subject's id, a bare SHA-256
        # would reveal it by guessing); the value's digest always ties the row to the record.
        key_differs = row.key_sha256 is not None and row.key_sha256 != _digest(record.key or b"")
        if key_differs or _digest(record.value or b"") != row.value_sha256:
            found.add(f"row {row.seq} differs from the Kafka record at {name}@{row.offset}")
        elif row.body is not None and not _content_matches(row, record.value or b""):
            found.add(
                f"row {row.seq}'s body or index columns differ from the Kafka record at {name}@{row.offset}"
            )
        found.checked += 1
        record = next(pending, None)
    while record is not None:
        unstored(record)
        record = next(pending, None)
    return found


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _content_matches(row: StoredCoordinate, value: bytes) -> bool:
    """An event row's body is the Kafka value itself, or (when it names a data subject) the value with
    the identifying parts sealed (domain.sealing); everything outside those parts must be the record's."""
    try:
        envelope = _loads(value)
        shown = envelope_fields(envelope)
    except (ValueError, RecursionError):  # not an envelope in Kafka, yet stored as an event
        return False
    if tuple(shown[name] for name in SHOWN) != row.shown:
        return False
    if _digest((row.body or "").encode("utf-8")) == row.value_sha256:
        return True
    try:
        body, kafka = _public(_loads((row.body or "").encode("utf-8"))), _public(envelope)
    except (ValueError, RecursionError):
        return False
    # Equal objects, or equal canonical text (NaN, which only the fallback decoder yields, is != itself).
    return body == kafka or json.dumps(body, sort_keys=True) == json.dumps(kafka, sort_keys=True)


def _loads(data: bytes) -> Any:
    try:
        return _decode(data)  # msgspec: several times faster; same objects for valid JSON
    except msgspec.DecodeError:
        return json.loads(data)  # what it refuses (NaN, huge integers), as the capture path decodes it


def _public(envelope: Any) -> Any:
    """The envelope without what sealing may replace."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), dict):
        return envelope
    payload = dict(envelope["payload"])
    for name in (*ALWAYS_SEALED, *SEALED_BY_TYPE.get(str(envelope.get("event_type")), ()), SEALED):
        payload.pop(name, None)
    many = payload.get(MANY_SUBJECTS)
    if many is not None:
        values = many if isinstance(many, list) else [many]
        payload[MANY_SUBJECTS] = [
            None if isinstance(v, dict) or subject_text(v) is not None else v for v in values
        ]
    return {**envelope, "payload": payload}
