"""What a repeated entity id means. Pure: the SQLite ledger (adapters/ledger.py) stores the decisions.

- The first valid record of an entity id is `new`.
- A valid record whose content digest equals that of the entity's last clean record is a
  `duplicate`: an identical resend, rejected with `duplicate_record` (nothing new to learn from it).
- A valid record with the same id but other content is an `update`: it goes clean like any record
  and supersedes the earlier one (last write wins, see docs/ingest.md).

The digest covers the validated record as the producer sent it (declared fields, before the PII
policy), canonicalised (keys sorted), so key order and whitespace do not make a resend look new.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

DecisionKind = Literal["new", "update", "duplicate"]
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid record about to go clean, with where it was read."""

    topic: str
    partition: int
    offset: int
    entity_id: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class Decision:
    kind: DecisionKind
    original: str | None = None  # for a duplicate: "topic/partition/offset" of the record it repeats

    @property
    def duplicate(self) -> bool:
        return self.kind == "duplicate"


def content_digest(record: dict[str, Any], key: bytes) -> bytes:
    """Keyed BLAKE2b-128 of the canonical JSON of `record` (the key keeps PII guesses unconfirmable)."""
    return hashlib.blake2b(_encode_sorted(record), key=key[:64], digest_size=16).digest()
