"""Verify a whole store: recompute every link (in parallel ranges when asked to), then hold the store
against the anchors it cannot rewrite: signed checkpoints and the Kafka log (`verify_trail`).

Every link depends only on the stored hash of the row before it, so the chain splits into ranges that
separate processes check independently; the first broken range (in sequence order) is the answer.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from servicekit.settings import split_servers
from servicekit.watermark import security_options
from services.audit.adapters.integrity import missing_guards, stored_coordinates, stored_partitions
from services.audit.adapters.kafka_log import KafkaLog
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.anchors import (
    LogRecord,
    PartitionLog,
    PublishedCheckpoint,
    compare_partition,
    judge_checkpoints,
)
from services.audit.domain.chain import VerifyReport, verify
from services.audit.range_check import verify_range
from services.audit.settings import AuditSettings
from services.audit.signing import TrustedKeys, trusted_keys

MIN_RANGE = 200_000  # below this, a process costs more than it saves
NOT_FROM_KAFKA = frozenset({"audit:erasure"})
"""Rows the audit service writes itself (erasures: domain.entry.ERASURE_TOPIC, a name Kafka cannot
give a topic). The chain and the checkpoints cover them; Kafka cannot."""


def verify_store(
    store: SqlAuditStore,
    anchors: Mapping[int, str] | None = None,
    workers: int = 1,
    min_range: int = MIN_RANGE,
    length: int | None = None,
) -> VerifyReport:
    """Verify rows 1..`length` (default: the head read at the start; later appends are left to the next
    run). This recomputes the chain only: `verify_trail` adds the anchors outside the database."""
    anchors = dict(anchors or {})
    if length is None:
        length = store.head()[0].length
    ranges = _ranges(length, workers, min_range)
    if len(ranges) <= 1:
        return verify(store.chain_rows(1, length), anchors)
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
        futures = [
            pool.submit(verify_range, store.url, store.app_role, first, last, anchors)
            for first, last in ranges
        ]
        reports = [future.result() for future in futures]
    checked, matched = 0, 0
    for report in reports:
        matched += report.anchors_checked
        if not report.ok:
            return VerifyReport(
                False, checked + report.checked, report.head_hash, report.broken_at, report.reason, matched
            )
        checked += report.checked
    beyond = [n for n in anchors if n > checked]
    if beyond:
        reason = f"chain ends at {checked} rows but a checkpoint covers {max(beyond)}"
        return VerifyReport(False, checked, reports[-1].head_hash, checked + 1, reason, matched)
    return VerifyReport(True, checked, reports[-1].head_hash, anchors_checked=matched)


def _ranges(length: int, workers: int, min_range: int) -> list[tuple[int, int]]:
    count = max(1, min(workers, length // max(1, min_range)))
    size = -(-length // count) if length else 0
    return [(first, min(first + size - 1, length)) for first in range(1, length + 1, size)] if size else []


# -- the whole trail: the chain and every anchor held outside the database ---------------------------


class AuditLog(Protocol):
    """What verify reads from Kafka (adapters.kafka_log.KafkaLog; an in-memory log in the tests)."""

    def checkpoints(self, topic: str) -> list[PublishedCheckpoint]: ...
    def bounds(self, topic: str) -> dict[int, tuple[int, int]]: ...
    def committed(self, group: str, topic: str) -> dict[int, int]: ...
    def records(self, topic: str, partition: int, start: int, stop: int) -> Iterator[LogRecord]: ...


@dataclass(frozen=True)
class TrailPolicy:
    chain_name: str
    checkpoint_topic: str
    capture_groups: Mapping[str, str]
    """Captured topic -> the audit consumer group that commits its offsets."""
    keys: TrustedKeys


@dataclass
class TrailReport:
    intact: bool
    checked: int
    head_hash: str
    broken_at: int | None
    reason: str | None
    """The first problem found; `problems` lists them all."""
    anchors_checked: int
    """Signed checkpoints whose head matched the recomputed chain."""
    problems: list[str] = field(default_factory=list)
    checkpoints_trusted: int = 0
    last_checkpoint_length: int | None = None
    published_genesis: str | None = None
    kafka_rows_checked: int = 0
    """Rows whose digests matched the Kafka record at their coordinates."""
    kafka_rows_expired: int = 0
    """Rows whose record Kafka's retention already removed (checked by the chain and checkpoints only)."""
    trusted_key_ids: list[str] = field(default_factory=list)


def verify_trail(store: SqlAuditStore, log: AuditLog, policy: TrailPolicy, workers: int = 1) -> TrailReport:
    """The one verification behind `GET /verify` and `mlops audit verify`. Reads in this order, so a
    store that is still appending is never mistaken for a truncated one: checkpoints, then the head,
    then committed and end offsets, then the rows."""
    published = judge_checkpoints(
        log.checkpoints(policy.checkpoint_topic), policy.chain_name, policy.keys.verifies
    )
    problems = list(published.problems)
    problems += [f"append-only guard: {missing}" for missing in missing_guards(store.reader)]
    head = store.head()[0]
    committed = {topic: log.committed(group, topic) for topic, group in policy.capture_groups.items()}
    chain = verify_store(store, published.anchors, workers=workers, length=head.length)
    if not chain.ok:
        problems.insert(0, f"chain broken at row {chain.broken_at}: {chain.reason}")
    genesis = store.stored_hash(1)
    if published.genesis and genesis not in published.genesis:
        problems.append("the chain's first row is not the genesis its signed checkpoints published")
    checked, expired = _compare_with_kafka(store, log, committed, head.length, problems)
    if head.length and not published.anchors and not checked:
        problems.append("no anchor outside the database: no signed checkpoint of this chain, and no row "
                        "whose record Kafka still holds")  # fmt: skip
    return TrailReport(
        intact=not problems,
        checked=chain.checked,
        head_hash=chain.head_hash,
        broken_at=chain.broken_at,
        reason=problems[0] if problems else None,
        anchors_checked=chain.anchors_checked,
        problems=problems,
        checkpoints_trusted=len(published.anchors),
        last_checkpoint_length=published.last_length,
        published_genesis=min(published.genesis) if published.genesis else None,
        kafka_rows_checked=checked,
        kafka_rows_expired=expired,
        trusted_key_ids=policy.keys.ids(),
    )


def _compare_with_kafka(
    store: SqlAuditStore,
    log: AuditLog,
    committed: Mapping[str, Mapping[int, int]],
    head: int,
    problems: list[str],
) -> tuple[int, int]:
    stored = {tp: top for tp, top in stored_partitions(store.reader).items() if tp[0] not in NOT_FROM_KAFKA}
    topics = sorted({topic for topic, _ in stored} | set(committed))
    checked = expired = 0
    for topic in topics:
        bounds = log.bounds(topic)
        groups_offsets = committed.get(topic, {})
        partitions = sorted({p for t, p in stored if t == topic} | set(groups_offsets))
        for partition in partitions:
            name = f"{topic}:{partition}"
            if partition not in bounds:
                problems.append(f"{name}: the store holds rows of a partition Kafka does not have")
                continue
            start, end = bounds[partition]
            last_stored = stored.get((topic, partition), -1)
            stop = min(end, max(last_stored + 1, groups_offsets.get(partition, 0)))
            found = compare_partition(
                name,
                stored_coordinates(store.reader, topic, partition),
                log.records(topic, partition, start, stop),
                PartitionLog(start, end, groups_offsets.get(partition), read_until=stop),
                head,
                lambda record: _stored_elsewhere(store, record),
            )
            checked, expired = checked + found.checked, expired + found.expired
            problems += found.problems
            if found.more_problems:
                problems.append(f"{name}: {found.more_problems} more problems")
    return checked, expired


def _stored_elsewhere(store: SqlAuditStore, record: LogRecord) -> bool:
    """A record left out because its event id was already stored (a producer's retry) is no loss."""
    try:
        event_id = json.loads(record.value or b"").get("event_id")
    except (ValueError, AttributeError, RecursionError):
        return False
    return isinstance(event_id, str) and store.first(event_id=event_id) is not None


class TrailVerifier:
    """`verify_trail` with its Kafka connection and policy built once from settings: what the route
    and the CLI both call."""

    def __init__(
        self,
        store: SqlAuditStore,
        open_log: Callable[[], AbstractContextManager[AuditLog]],
        policy: Callable[[], TrailPolicy],
        workers: int = 1,
    ) -> None:
        """`policy` is built at each run: the service creates its key on first start, after the app."""
        self.store, self.open_log, self.policy, self.workers = store, open_log, policy, workers

    @classmethod
    def from_settings(
        cls,
        settings: AuditSettings,
        store: SqlAuditStore,
        bootstrap: str | None = None,
        workers: int | None = None,
    ) -> TrailVerifier:
        def policy() -> TrailPolicy:
            keys = trusted_keys(settings.trusted_public_keys, settings.resolved_signing_key_file)
            groups = settings.capture_groups()
            return TrailPolicy(settings.chain_name, settings.checkpoint_topic, groups, keys)

        servers, options = (
            split_servers(bootstrap or settings.kafka_bootstrap_servers),
            security_options(settings),
        )
        return cls(store, lambda: KafkaLog(servers, settings.verify_timeout_s, **options), policy,
                   workers or settings.verify_workers)  # fmt: skip

    def verify(self) -> TrailReport:
        policy = self.policy()
        with self.open_log() as log:
            return verify_trail(self.store, log, policy, self.workers)
