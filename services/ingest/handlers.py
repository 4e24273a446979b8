"""The ingest use case, shared by the Kafka subscriber and the HTTP route.

`handle` turns a batch of raw records into exactly one outcome event each (clean or rejected) and
returns only when all are acknowledged by Kafka; the subscriber commits offsets after that
(at-least-once). Outcome event ids derive from the raw coordinates, so a redelivery republishes the
same events and consumers dedupe them. A repeated entity id is judged by the `RecordLedger`
(domain/duplicates.py): an identical resend is rejected as `duplicate_record`, a changed record is an
update. `submit` is the HTTP way in: the whole request is validated first, and only a request whose
every record is valid is appended to the raw topic (all or nothing); the records then take the same
path as any Kafka producer's records.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from servicekit.tasks import retrying
from services.ingest.domain import events
from services.ingest.domain.duplicates import Candidate, Decision, content_digest
from services.ingest.domain.events import OutMessage, Source
from services.ingest.domain.privacy import PiiPolicyApplier, TextScrubber, redact_known, scrub_isolated
from services.ingest.domain.schema import DatasetSchema
from services.ingest.domain.validation import Code, RecordValidator, Verdict
from services.ingest.errors import AppendFailed, RecordsRefused
from services.ingest.metrics import OUTCOMES, PII_FOUND, PUBLISH_RETRIES, RAW_RECORDS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawInput:
    source: Source
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Appended:
    """Where the raw topic stored a record sent over HTTP."""

    partition: int
    offset: int
    timestamp_ms: int


class OutcomePublisher(Protocol):
    async def publish(self, messages: Sequence[OutMessage]) -> None: ...

    async def append_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> list[Appended | Exception]:
        """Where each record landed, or why it did not (one entry per record, in order)."""
        ...


class RecordLedger(Protocol):
    def decide(self, dataset: str, candidates: Sequence[Candidate]) -> list[Decision]:
        """Judge and record, in one transaction; a redelivered offset gets its first decision again."""
        ...

    def latest(self, dataset: str, entity_ids: Sequence[str]) -> dict[str, bytes]:
        """Digest of the last clean record per known entity id (read only)."""
        ...


@dataclass(frozen=True)
class Topics:
    raw: str
    clean: str
    rejected: str


@dataclass
class IngestHandler:
    schema: DatasetSchema
    validator: RecordValidator
    policy: PiiPolicyApplier
    publisher: OutcomePublisher
    topics: Topics
    producer: str = "ingest"
    scrubber: TextScrubber | None = None
    ledger: RecordLedger | None = None  # None: repeated ids are not judged (every valid record is clean)
    digest_key: bytes = b""
    retry_max_s: float = 5.0
    offload: bool = field(default=True, repr=False)  # run the CPU work in a thread (tests: inline)

    async def handle(self, batch: Sequence[RawInput]) -> list[OutMessage]:
        RAW_RECORDS.labels("kafka").inc(len(batch))
        messages = await asyncio.to_thread(self.process, batch) if self.offload else self.process(batch)
        await self._publish(messages)
        for code, count in Counter(m.code for m in messages).items():
            OUTCOMES.labels("clean" if code == "ok" else "rejected", code).inc(count)
        return messages

    def process(self, batch: Sequence[RawInput]) -> list[OutMessage]:
        """Validate, scrub, judge repeats (the ledger), encode. One outcome per input, in input order."""
        verdicts = [self.validator.check(raw.value, _arrival(raw.source)) for raw in batch]
        digests = [self._digest(v) for v in verdicts]  # before the PII policy rewrites the record
        scrubbed_fields = [self._structured(v) for v in verdicts]
        failed = self._scrub_text(verdicts, scrubbed_fields)
        pii = Counter(name for touched in scrubbed_fields for name in touched)
        for name, count in pii.items():  # one metric update per field and batch, not per record
            spec = self.schema.fields[name]
            PII_FOUND.labels(spec.pii or name, "free_text" if spec.type == "text" else "structured").inc(
                count
            )
        decisions = self._judge(batch, verdicts, digests, failed)
        return [
            self._outcome(raw, verdict, touched, failed=i in failed, decision=decisions.get(i))
            for i, (raw, verdict, touched) in enumerate(zip(batch, verdicts, scrubbed_fields, strict=True))
        ]

    def _digest(self, verdict: Verdict) -> bytes | None:
        if not verdict.ok or verdict.record is None:
            return None
        return content_digest(verdict.record, self.digest_key)

    def _judge(
        self,
        batch: Sequence[RawInput],
        verdicts: list[Verdict],
        digests: list[bytes | None],
        failed: set[int],
    ) -> dict[int, Decision]:
        """The ledger's decision for each record that would go clean, by index."""
        if self.ledger is None:
            return {}
        slots = [i for i, d in enumerate(digests) if d is not None and i not in failed]
        candidates = [
            Candidate(
                batch[i].source.topic,
                batch[i].source.partition,
                batch[i].source.offset,
                str(verdicts[i].entity_id),
                digests[i] or b"",
            )
            for i in slots
        ]
        return dict(zip(slots, self.ledger.decide(self.schema.dataset, candidates), strict=True))

    def _structured(self, verdict: Verdict) -> list[str]:
        record = verdict.record
        if record is None:
            return []
        has_text = any(record.get(name) for name in self.schema.text_fields)
        if verdict.ok and self.schema.free_text.redact_known_values and has_text:
            record["__known__"] = self.policy.known_values(record)  # read before hashing; popped later
        return self.policy.apply_structured(record)

    def _scrub_text(self, verdicts: list[Verdict], touched: list[list[str]]) -> set[int]:
        """Scrub every free-text value of the batch in one call; return the indexes that failed."""
        slots: list[tuple[int, str]] = []
        texts: list[str] = []
        for i, verdict in enumerate(verdicts):
            if not verdict.ok or verdict.record is None:
                continue
            known = verdict.record.pop("__known__", [])
            for name in self.schema.text_fields:
                text = verdict.record.get(name)
                if isinstance(text, str) and text.strip():
                    slots.append((i, name))
                    texts.append(redact_known(text, known) if known else text)
        if not texts:
            return set()
        results = scrub_isolated(self.scrubber, texts)
        failed = {i for (i, _), result in zip(slots, results, strict=True) if result is None}
        for (i, name), result in zip(slots, results, strict=True):
            record = verdicts[i].record
            assert record is not None
            if result is None or i in failed:  # the record is rejected, its free text dropped
                continue
            if result.text != record[name]:
                touched[i].append(name)
            record[name] = result.text
        return failed

    def _outcome(
        self, raw: RawInput, verdict: Verdict, touched: list[str], failed: bool, decision: Decision | None
    ) -> OutMessage:
        dataset = self.schema.dataset
        if verdict.ok and not failed and not (decision and decision.duplicate):
            assert verdict.record is not None and verdict.event_time is not None
            return events.cleaned(
                dataset,
                raw.source,
                str(verdict.entity_id),
                verdict.event_time,
                verdict.record,
                touched,
                self.producer,
                self.topics.clean,
            )
        code, message, errors = verdict.code or Code.SCRUB_FAILED, verdict.message, verdict.errors
        record = verdict.record
        if decision is not None and decision.duplicate:
            code, message = Code.DUPLICATE, f"identical to the record already accepted at {decision.original}"
        elif failed:
            code, message, errors = Code.SCRUB_FAILED, "free-text PII scrubbing failed", []
            record = {k: v for k, v in (record or {}).items() if k not in self.schema.text_fields}
        return events.rejected(
            dataset,
            raw.source,
            raw.value,
            code,
            message,
            errors,
            verdict.entity_id,
            record,
            self.producer,
            self.topics.rejected,
        )

    async def _publish(self, messages: list[OutMessage]) -> None:
        """Keep trying while Kafka is unavailable: offsets are committed only after this returns, and
        giving up would hand the batch to the kit's failure path, which is for bad records, not for a
        broker that is away."""
        await retrying(
            lambda: self.publisher.publish(messages),
            what=f"publishing {len(messages)} outcomes",
            max_wait_s=self.retry_max_s,
            on_retry=PUBLISH_RETRIES.inc,
        )

    async def submit(self, values: Sequence[bytes]) -> list[dict[str, Any]]:
        """HTTP producers, all or nothing: every record is validated (sizes included) before any is
        appended; one invalid record refuses the request (`RecordsRefused`, nothing appended). A valid
        request is appended to the raw topic (acks=all), and each receipt says where the record went,
        the event id its outcome will carry and the outcome predicted (a resend: `duplicate_record`).
        If Kafka fails part-way, `AppendFailed` says which records landed and which did not."""
        RAW_RECORDS.labels("http").inc(len(values))
        now = datetime.now(UTC)
        verdicts = [self.validator.check(value, now) for value in values]
        refused = [_refusal(i, v) for i, v in enumerate(verdicts) if not v.ok]
        if refused:
            message = f"{len(refused)} of {len(values)} records are invalid; none appended"
            raise RecordsRefused(message, refused)
        ids = [str(v.entity_id) for v in verdicts]
        predicted = self._predict_duplicates(ids, [self._digest(v) for v in verdicts])
        keys: list[bytes | None] = [entity_id.encode() for entity_id in ids]
        try:
            appended = await self.publisher.append_raw(self.topics.raw, list(zip(keys, values, strict=True)))
        except Exception as exc:  # the port reports part-way failures per record; a raise sent nothing
            log.warning("appending %d HTTP records failed: %r", len(values), exc)
            appended = [exc] * len(values)
        receipts = [
            self._receipt(where, duplicate) for where, duplicate in zip(appended, predicted, strict=True)
        ]
        if any(isinstance(where, Exception) for where in appended):
            landed = sum(1 for where in appended if not isinstance(where, Exception))
            raise AppendFailed(f"Kafka took {landed} of {len(values)} records; see each record", receipts)
        return receipts

    def _predict_duplicates(self, ids: list[str], digests: list[bytes | None]) -> list[bool]:
        """Which records the consumer will find identical to the entity's last clean record."""
        if self.ledger is None:
            return [False] * len(ids)
        last: dict[str, bytes | None] = dict(self.ledger.latest(self.schema.dataset, ids))
        predicted = []
        for entity_id, digest in zip(ids, digests, strict=True):
            predicted.append(last.get(entity_id) == digest)
            last[entity_id] = digest
        return predicted

    def _receipt(self, where: Appended | Exception, duplicate: bool) -> dict[str, Any]:
        if isinstance(where, Exception):
            return {"landed": False, "error": type(where).__name__}
        source = Source(self.topics.raw, where.partition, where.offset, where.timestamp_ms)
        return {
            "landed": True,
            "source": source.as_dict(),
            "event_id": events.event_id_for(self.schema.dataset, source),
            "expected_outcome": "rejected" if duplicate else "clean",
            "code": Code.DUPLICATE if duplicate else None,
        }


def _arrival(source: Source) -> datetime | None:
    """When Kafka received the record; None when it carries no timestamp."""
    return datetime.fromtimestamp(source.timestamp_ms / 1000, UTC) if source.timestamp_ms > 0 else None


def _refusal(index: int, verdict: Verdict) -> dict[str, Any]:
    return {
        "index": index,
        "code": verdict.code,
        "message": verdict.message,
        "errors": [e.model_dump() for e in verdict.errors],
    }
