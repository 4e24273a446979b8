"""Verify against anchors the database does not hold (signed checkpoints, the Kafka log), on a SQLite
store tampered with raw SQL as its administrator would. Each case first shows that the chain alone
(`verify_store`, what verify was before) still passes, then that `verify_trail` catches it."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from contracts.envelope import Event
from contracts.events import AuditCheckpointedPayload
from contracts.registry import encode_event
from contracts.samples import sample_events
from servicekit.watermark import security_options as client_options
from services.audit.adapters.integrity import missing_guards, stored_coordinates
from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.anchors import PartitionLog, PublishedCheckpoint, compare_partition
from services.audit.domain.entry import Captured, to_entry
from services.audit.handlers import AuditService, now_us
from services.audit.settings import AuditSettings
from services.audit.signing import CheckpointSigner, TrustedKeys
from services.audit.verification import TrailPolicy, TrailReport, verify_store, verify_trail
from tests.unit.test_audit_support import MemoryLog, as_attacker, lineage_flow, new_store, open_store, rechain

TS = 1_735_787_045_000
MIGRATION = importlib.import_module("services.audit.migrations.versions.0001_audit_events")


@dataclass
class Trail:
    store: SqlAuditStore
    log: MemoryLog
    signer: CheckpointSigner
    policy: TrailPolicy

    def capture(self, events: list[Event[Any]], topic: str = "flow", partitions: int = 1) -> list[Captured]:
        messages = []
        for i, event in enumerate(events):
            partition = i % partitions
            held = self.log.partitions.get((topic, partition), {})
            offset = max(held, default=-1) + 1
            messages.append(Captured(topic, partition, offset, TS, event.key(), encode_event(event)))
            self.log.add(messages[-1:])
        AuditService(self.store).capture(messages)
        return messages

    def checkpoint(
        self, signer: CheckpointSigner | None = None, chain: str = "audit"
    ) -> AuditCheckpointedPayload:
        event = AuditService(self.store).make_checkpoint(force=True)
        assert event is not None
        genesis = self.store.stored_hash(1)
        assert genesis is not None
        payload = (signer or self.signer).sign(event.payload, chain, genesis)
        self.log.published.append(
            PublishedCheckpoint(payload, f"audit.checkpoints:0:{len(self.log.published)}")
        )
        return payload

    def verify(self) -> TrailReport:
        return verify_trail(self.store, self.log, self.policy)


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    groups = {"flow": "audit.flow", "mixed": "audit.mixed"}
    policy = TrailPolicy("audit", "audit.checkpoints", groups, TrustedKeys([signer.public]))
    trail = Trail(new_store(tmp_path), MemoryLog(), signer, policy)
    trail.capture(lineage_flow() + lineage_flow("pred-2", version="8"))
    trail.capture(sample_events(), topic="mixed", partitions=3)
    trail.checkpoint()
    return trail


def problems(report: TrailReport, *words: str) -> list[str]:
    return [p for p in report.problems if all(w in p for w in words)]


def test_an_untouched_trail_verifies_against_its_checkpoint_and_every_kafka_record(trail: Trail) -> None:
    report = trail.verify()
    length = trail.store.head()[0].length
    assert report.intact and report.problems == [] and report.reason is None
    assert (
        report.checked == length and report.anchors_checked == 1 and report.last_checkpoint_length == length
    )
    assert report.kafka_rows_checked == length and report.published_genesis == trail.store.stored_hash(1)


def test_dropped_triggers_fail_verify(trail: Trail) -> None:
    as_attacker(trail.store)  # drops the guards, changes no row
    assert verify_store(trail.store).ok
    report = trail.verify()
    assert not report.intact and len(problems(report, "append-only guard")) == 2


def test_a_trigger_replaced_by_a_no_op_of_the_same_name_fails_verify(trail: Trail) -> None:
    migrated_update_guard = MIGRATION.SQLITE_GUARDS[0]  # put back exactly as migrated
    no_op = "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT 1; END"
    as_attacker(trail.store, migrated_update_guard, no_op)
    report = trail.verify()
    assert problems(report, "audit_events_no_delete") and not problems(report, "audit_events_no_update")


def test_a_tail_cut_below_the_last_checkpoint_fails_verify(trail: Trail) -> None:
    length = trail.store.head()[0].length
    as_attacker(trail.store, f"DELETE FROM audit_events WHERE seq > {length - 2}")
    assert verify_store(trail.store).ok
    report = trail.verify()
    assert problems(report, "chain broken", f"a checkpoint covers {length}")
    assert problems(report, "committed by the audit group, not in the store")


def test_a_tail_cut_after_the_last_checkpoint_is_caught_by_the_committed_offsets(trail: Trail) -> None:
    length = trail.store.head()[0].length
    trail.capture(lineage_flow("pred-3", version="9"))
    as_attacker(trail.store, f"DELETE FROM audit_events WHERE seq > {length + 1}")
    assert verify_store(trail.store, anchors={length: trail.log.published[0].payload.head_hash}).ok
    report = trail.verify()
    assert not report.intact and len(problems(report, "flow:0@", "not in the store")) == 4


def test_a_forged_row_with_a_correct_hash_fails_verify(trail: Trail) -> None:
    forged = lineage_flow(version="666")[3]  # a ModelPromoted nobody published
    row = to_entry(Captured("flow", 0, 10, TS, forged.key(), encode_event(forged)))
    trail.store.append([row], now_us())  # INSERT is allowed; the attacker chains it correctly
    assert verify_store(trail.store).ok
    assert trail.store.first(event_type="ModelPromoted", model_version="666") is not None  # shows in /events
    report = trail.verify()
    assert problems(report, "claims flow:0@10, which Kafka never held")


def test_a_forged_row_on_a_topic_kafka_does_not_have_fails_verify(trail: Trail) -> None:
    forged = lineage_flow(version="666")[3]
    trail.store.append(
        [to_entry(Captured("model.lifecycle", 0, 0, TS, None, encode_event(forged)))], now_us()
    )
    assert verify_store(trail.store).ok
    assert problems(trail.verify(), "model.lifecycle:0", "Kafka does not have")


def test_an_edit_with_every_later_hash_recomputed_fails_verify(trail: Trail) -> None:
    edit = "UPDATE audit_events SET model_version = '9', body = replace(body, '\"7\"', '\"9\"') WHERE seq = 4"
    as_attacker(trail.store, edit)
    rechain(trail.store, first=4)
    assert verify_store(trail.store).ok
    report = trail.verify()
    assert report.broken_at is not None and problems(report, "differs from the published checkpoint")


def test_an_edit_after_the_last_checkpoint_is_caught_by_the_kafka_digest(trail: Trail) -> None:
    trail.capture(lineage_flow("pred-3", version="9"))
    seq = trail.store.head()[0].length - 1  # the ModelPromoted just captured, after the checkpoint
    as_attacker(trail.store, f"UPDATE audit_events SET value_sha256 = '{'ab' * 32}' WHERE seq = {seq}")
    rechain(trail.store, first=seq)
    assert verify_store(
        trail.store, anchors={r.payload.chain_length: r.payload.head_hash for r in trail.log.published}
    ).ok
    assert problems(trail.verify(), f"row {seq} differs from the Kafka record")


def test_a_chain_rewritten_from_its_first_row_fails_verify(trail: Trail) -> None:
    """Before: the chain id came from row 1, so a rewritten chain found no checkpoint and passed."""
    rows = trail.store.events(EventQuery(limit=1000))
    for key in trail.log.partitions:  # retention removed every record: only the checkpoint is left
        trail.log.start[key] = max(trail.log.partitions[key]) + 1
    as_attacker(trail.store, "DELETE FROM audit_events")
    forged = [
        to_entry(Captured(r["topic"], r["partition"], r["offset"], TS, None, _nine(r["body"]))) for r in rows
    ]
    trail.store.append(forged, now_us())
    assert verify_store(trail.store).ok
    report = trail.verify()
    assert problems(report, "not the genesis its signed checkpoints published")
    assert problems(report, "differs from the published checkpoint")


def _nine(body: str | None) -> bytes:
    return (body or "{}").replace('"7"', '"9"').encode()


def test_a_checkpoint_altered_after_signing_fails_verify(trail: Trail) -> None:
    signed = trail.log.published[0]
    altered = signed.payload.model_copy(update={"chain_length": 3})
    trail.log.published.append(PublishedCheckpoint(altered, "audit.checkpoints:0:9"))
    assert problems(trail.verify(), "audit.checkpoints:0:9", "signature does not verify")


def test_a_checkpoint_signed_by_an_untrusted_key_fails_verify(trail: Trail) -> None:
    trail.checkpoint(signer=CheckpointSigner(Ed25519PrivateKey.generate()))
    assert problems(trail.verify(), "signature does not verify")


def test_unsigned_and_foreign_checkpoints_are_ignored(trail: Trail) -> None:
    legacy = trail.log.published[0].payload.model_copy(
        update={"chain_name": None, "signature": None, "key_id": None, "head_hash": "00" * 32}
    )
    trail.log.published.append(PublishedCheckpoint(legacy, "audit.checkpoints:0:7"))
    trail.checkpoint(signer=CheckpointSigner(Ed25519PrivateKey.generate()), chain="another-store")
    report = trail.verify()
    assert report.intact and report.anchors_checked == 1


def test_no_anchor_outside_the_database_fails_verify(trail: Trail) -> None:
    trail.log.published.clear()
    for key in trail.log.partitions:
        trail.log.start[key] = max(trail.log.partitions[key]) + 1
    report = trail.verify()
    assert problems(report, "no anchor outside the database")
    assert report.kafka_rows_expired == trail.store.head()[0].length


def test_an_empty_store_that_nothing_was_published_for_is_intact(tmp_path: Path, trail: Trail) -> None:
    empty = new_store(tmp_path, "empty.db")
    assert verify_trail(empty, MemoryLog(), trail.policy).intact


def test_an_emptied_store_fails_on_the_committed_offsets_alone(trail: Trail) -> None:
    trail.log.published.clear()
    as_attacker(trail.store, "DELETE FROM audit_events")
    report = trail.verify()
    assert not report.intact and problems(report, "not in the store")


def test_a_producer_retry_stored_once_is_not_a_loss(trail: Trail) -> None:
    flow = lineage_flow("pred-5")
    first = trail.capture(flow)
    again = trail.capture(flow[:1])  # the same event id at a new offset: the store keeps it once
    stored = trail.store.first(event_id=json.loads(again[0].value or b"")["event_id"])
    assert stored is not None and stored["offset"] == first[0].offset != again[0].offset
    assert trail.verify().intact


def test_rows_appended_after_the_head_was_read_are_not_called_forged(trail: Trail) -> None:
    """A live service appends while verify runs: a row past the end offsets verify read is newer, not
    forged, when its sequence number is past the head verify read first."""
    later = lineage_flow("pred-4")[:1]
    head = trail.store.head()[0].length
    trail.capture(later)
    log = trail.log
    del log.partitions[("flow", 0)][max(log.partitions[("flow", 0)])]  # Kafka as it was before
    log.committed_offsets[("flow", 0)] -= 1
    found = compare_partition(
        "flow:0",
        stored_coordinates(trail.store.reader, "flow", 0),
        log.records("flow", 0, 0, 10),
        PartitionLog(0, 10, 10),
        head,
        lambda _: False,
    )
    assert found.problems == [] and found.checked == 10


@pytest.mark.parametrize("in_chain_at_head", [False, True])
def test_a_row_stored_after_the_stores_offsets_were_read_is_newer_unless_the_head_had_it(
    trail: Trail, in_chain_at_head: bool
) -> None:
    """Found by calling /verify in a loop while the demo stack was scoring: Kafka already holds the
    record (its offset is below the end verify read), but the row was stored after verify read the
    store's last offsets, so the records were read only up to there. Newer, not forged; yet a row
    the head already counted must have been read, so past that point it is a claim Kafka cannot back."""
    head = trail.store.head()[0].length
    trail.capture(lineage_flow("pred-4")[:1])  # Kafka gets offset 10, then the store its row
    if in_chain_at_head:
        head = trail.store.head()[0].length
    found = compare_partition(
        "flow:0",
        stored_coordinates(trail.store.reader, "flow", 0),
        trail.log.records("flow", 0, 0, 10),  # the store's last offset was 9 when verify read it
        PartitionLog(0, 11, 10, read_until=10),
        head,
        lambda _: False,
    )
    assert found.checked == 10
    forged = [f"row {head} claims flow:0@10, which Kafka never held"]
    assert found.problems == (forged if in_chain_at_head else [])


@pytest.mark.parametrize(
    "edit",
    [
        'body = replace(body, \'"model_version":"9"\', \'"model_version":"666"\')',  # not a sealed part
        "model_version = '666'",  # what /events filters on
        "producer = 'serving'",
    ],
)
def test_an_edit_of_a_recent_row_that_keeps_its_digests_is_caught_by_the_kafka_record(
    trail: Trail, edit: str
) -> None:
    """After the last checkpoint, with the digests left alone, only the record's content can tell."""
    trail.capture(lineage_flow("pred-3", version="9"))
    seq = trail.store.head()[0].length - 1  # the ModelPromoted just captured
    as_attacker(trail.store, f"UPDATE audit_events SET {edit} WHERE seq = {seq}")
    rechain(trail.store, first=seq)
    anchors = {r.payload.chain_length: r.payload.head_hash for r in trail.log.published}
    assert verify_store(trail.store, anchors=anchors).ok
    assert problems(trail.verify(), f"row {seq}'s body or index columns differ from the Kafka record")


def test_sealed_rows_of_data_subjects_still_match_their_kafka_records(trail: Trail) -> None:
    rows = list(trail.store.chain_rows())  # as stored: sealed (events() opens them for auditors)
    assert any('"sealed":' in (row[-2] or "") for row in rows)  # such a body is not the Kafka value
    report = trail.verify()
    assert report.intact and report.kafka_rows_checked == len(rows)


def test_verify_reads_kafka_with_the_platforms_security_settings() -> None:
    assert client_options(AuditSettings()) == {}
    secured = AuditSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="auditor",
        kafka_sasl_password="s3cret-value",
    )
    options = client_options(secured)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret-value" and options["ssl_context"] is not None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_guard_check_sees_dropped_and_disabled_triggers_on_both_backends(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'guards.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database()
    store = open_store(url)
    try:
        assert missing_guards(store.reader) == []
        if backend == "postgresql":  # disabled, not dropped: still no guard
            owner = create_engine(url, poolclass=NullPool)
            with owner.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_truncate")
            owner.dispose()
            assert missing_guards(store.reader) == ["trigger audit_events_no_truncate is missing or disabled"]
        as_attacker(store)
        assert len(missing_guards(store.reader)) == 2
    finally:
        store.dispose()
