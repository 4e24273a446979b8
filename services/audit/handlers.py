"""Use cases of the audit service, shared by the Kafka subscriber, the HTTP routes and the CLI."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from contracts.events import AuditCheckpointed, AuditCheckpointedPayload
from services.audit import metrics
from services.audit.adapters.store import AppendResult, Erasure, SqlAuditStore
from services.audit.domain.chain import VerifyReport
from services.audit.domain.entry import Captured, to_entry
from services.audit.verification import verify_store

log = logging.getLogger(__name__)


def now_us() -> int:
    return time.time_ns() // 1000


class AuditService:
    """Capture (append), verify, summarise and checkpoint one audit store."""

    def __init__(
        self,
        store: SqlAuditStore,
        *,
        content_free_topics: Sequence[str] = (),
        checkpoint_topic: str | None = None,
        verify_workers: int = 1,
    ) -> None:
        self.store = store
        self.content_free = frozenset(content_free_topics)
        self.checkpoint_topic = checkpoint_topic
        self.verify_workers = verify_workers
        self.appended_since_checkpoint = 0
        self.last_checkpoint_length = -1

    # -- capture -----------------------------------------------------------------------------------
    def capture(self, messages: Sequence[Captured]) -> AppendResult:
        """Append a batch once: duplicates (event id or coordinates) are skipped before chaining."""
        started = time.perf_counter()
        entries = [to_entry(m, store_body=m.topic not in self.content_free) for m in messages]
        result = self.store.append(entries, now_us())
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for topic, count in result.by_topic.items():
            metrics.APPENDED.labels(topic).inc(count)
        for topic, count in (Counter(m.topic for m in messages) - result.by_topic).items():
            metrics.DUPLICATES.labels(topic).inc(count)
        for topic, count in result.undecodable.items():
            metrics.UNDECODABLE.labels(topic).inc(count)
        metrics.CHAIN_LENGTH.set(result.head.length)
        # The service's own checkpoints coming back do not make a new checkpoint due.
        self.appended_since_checkpoint += sum(
            count for topic, count in result.by_topic.items() if topic != self.checkpoint_topic
        )
        if result.duplicates:
            log.info("skipped %d redelivered messages", result.duplicates)
        return result

    # -- erase -------------------------------------------------------------------------------------
    def erase(self, subject_id: str, requested_by: str) -> Erasure:
        """Crypto-shred one data subject: its key goes, an audited erasure row (reference only) comes."""
        erasure = self.store.erase(subject_id, requested_by, now_us())
        self.appended_since_checkpoint += 1  # the erasure row is anchored by the next checkpoint
        log.info(
            "erased subject %s (keys deleted: %d) at row %d",
            erasure.subject_ref, erasure.keys_deleted, erasure.seq,
            extra={"subject_ref": erasure.subject_ref, "requested_by": requested_by},
        )  # fmt: skip
        if erasure.wal_truncated is False:
            log.warning("the WAL could not be truncated after an erasure; it is at the next checkpoint")
        return erasure

    # -- verify ------------------------------------------------------------------------------------
    def verify(self, anchors: Mapping[int, str] | None = None, workers: int | None = None) -> VerifyReport:
        return verify_store(self.store, anchors=anchors, workers=workers or self.verify_workers)

    # -- summary -----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        head, last_event_id = self.store.head()
        by_kind: dict[str, dict[str, int]] = {}
        for kind, name, count in self.store.counts():
            by_kind.setdefault(kind, {})[name] = count
        return {
            "chain_length": head.length,
            "head_hash": head.hash.hex(),
            "last_event_id": last_event_id,
            "events_by_type": by_kind.get("event", {}),
            "raw_by_topic": by_kind.get("raw", {}),
            "undecodable_by_topic": by_kind.get("undecodable", {}),
            "erasures": sum(by_kind.get("erasure", {}).values()),
        }

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint_due(self, every_events: int) -> bool:
        return self.appended_since_checkpoint >= every_events

    def make_checkpoint(self, *, force: bool = False) -> AuditCheckpointed | None:
        """The current head as an event, unless nothing but checkpoints arrived since the last one.

        Asked of the store, not of this instance's own appends: with several instances appending, the
        one that publishes checkpoints may have appended nothing since its last."""
        head, last_event_id = self.store.head()
        if head.length == 0:
            return None
        if not force and (
            head.length == self.last_checkpoint_length
            or not self.store.appended_after(max(self.last_checkpoint_length, 0), self.checkpoint_topic)
        ):
            return None
        self.appended_since_checkpoint = 0
        self.last_checkpoint_length = head.length
        payload = AuditCheckpointedPayload(
            chain_length=head.length,
            head_hash=head.hash.hex(),
            last_event_id=UUID(last_event_id) if last_event_id else None,
            covered_until=datetime.now(UTC),
        )
        # All checkpoints of one chain share a correlation id named after the chain's first row, so a
        # reader can tell two audit stores apart on one topic.
        return AuditCheckpointed.create(payload, producer="audit", correlation_id=self.chain_id())

    def chain_id(self) -> str:
        first = self.store.stored_hash(1)
        return f"audit-chain-{first[:32]}" if first else "audit-chain-empty"
