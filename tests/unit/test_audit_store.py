"""The SQL store on a real SQLite file: append-only guards, idempotent appends, and tampering by raw SQL
(guards dropped first, as an attacker with database access would) detected by verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from contracts.samples import sample_events
from services.audit.adapters.schema import metadata
from services.audit.adapters.store import EventQuery, SqlAuditStore
from services.audit.domain.entry import to_entry
from services.audit.handlers import AuditService
from services.audit.verification import verify_store
from tests.unit.test_audit_support import as_attacker, captured, lineage_flow, new_store


@pytest.fixture
def store(tmp_path: Path) -> SqlAuditStore:
    store = new_store(tmp_path)
    events = sample_events() + lineage_flow() + lineage_flow("pred-2", version="8")
    AuditService(store).capture(captured(events, topic="mixed"))  # 23 rows, seq 1..23
    return store


def test_the_migration_builds_exactly_the_schema_the_code_queries(store: SqlAuditStore) -> None:
    with store.reader.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET entity_id = 'x' WHERE seq = 3", "DELETE FROM audit_events WHERE seq = 3"],
)
def test_the_database_refuses_update_and_delete(store: SqlAuditStore, statement: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), store.writer.begin() as conn:
        conn.execute(text(statement))
    assert verify_store(store).ok


def test_a_redelivered_batch_or_a_republished_event_is_appended_once(store: SqlAuditStore) -> None:
    again = captured(sample_events() + lineage_flow(), topic="mixed")  # same coordinates
    republished = captured(sample_events(), topic="mixed", first_offset=100)  # same ids, new offsets
    result = AuditService(store).capture(again + republished)
    assert result.appended == 0 and result.duplicates == len(again) + len(republished)
    assert store.head()[0].length == 23
    within = captured(lineage_flow("p-new"), topic="other") * 2  # a batch that repeats itself
    assert AuditService(store).capture(within).appended == 5
    report = verify_store(store)
    assert report.ok and report.checked == 28


@pytest.mark.parametrize(
    ("statements", "broken_at"),
    [
        (["UPDATE audit_events SET model_version = '99' WHERE seq = 7"], 7),
        (["UPDATE audit_events SET body = replace(body, 'review', 'approve') WHERE seq = 18"], 18),
        (["DELETE FROM audit_events WHERE seq = 10"], 10),
        (  # an inserted row: renumber the rest, then put a copy of row 4 in the gap
            [
                "UPDATE audit_events SET seq = -seq - 1 WHERE seq > 4",
                "UPDATE audit_events SET seq = -seq WHERE seq < 0",
                'INSERT INTO audit_events SELECT 5, kind, topic, partition, "offset" + 1000, kafka_ts_ms,'
                " key_sha256, value_sha256, size, NULL, event_type, schema_version, occurred_at_us, producer,"
                " correlation_id, causation_id, entity_id, model_name, model_version, prediction_id, run_id,"
                " note, recorded_at_us, body, row_hash FROM audit_events WHERE seq = 4",
            ],
            5,
        ),
        (  # two rows swapped, each keeping its own hash
            [
                "UPDATE audit_events SET seq = -1 WHERE seq = 12",
                "UPDATE audit_events SET seq = 12 WHERE seq = 13",
                "UPDATE audit_events SET seq = 13 WHERE seq = -1",
            ],
            12,
        ),
        (
            [
                'INSERT INTO audit_events SELECT 24, kind, topic, partition, "offset" + 1000, kafka_ts_ms,'
                " key_sha256, value_sha256, size, NULL, event_type, schema_version, occurred_at_us, producer,"
                " correlation_id, causation_id, entity_id, model_name, model_version, prediction_id, run_id,"
                " note, recorded_at_us, body, row_hash FROM audit_events WHERE seq = 23"
            ],
            24,
        ),
    ],
    ids=["updated", "body-edited", "deleted", "inserted", "swapped", "appended-forgery"],
)
@pytest.mark.parametrize("workers", [1, 3])
def test_tampering_by_raw_sql_is_found_at_the_first_broken_link(
    store: SqlAuditStore, statements: list[str], broken_at: int, workers: int
) -> None:
    as_attacker(store, *statements)
    report = verify_store(store, workers=workers, min_range=5)
    assert not report.ok
    assert report.broken_at == broken_at and report.checked == broken_at - 1, report


def test_a_chain_rewritten_from_scratch_is_caught_only_by_its_checkpoint(
    store: SqlAuditStore, tmp_path: Path
) -> None:
    anchor = {store.head()[0].length: store.head()[0].hash.hex()}
    forged = new_store(tmp_path, "forged.db")  # the attacker replays altered events into a fresh chain
    events = sample_events() + lineage_flow() + lineage_flow("pred-2", version="9")
    AuditService(forged).capture(captured(events, topic="mixed"))
    assert verify_store(forged).ok
    report = verify_store(forged, anchors=anchor)
    assert not report.ok and report.broken_at == 23 and "checkpoint" in (report.reason or "")


def test_queries_bind_every_value(store: SqlAuditStore) -> None:
    assert store.events(EventQuery(entity_id="' OR 1=1 --")) == []
    assert store.events(EventQuery(event_type='PredictionMade" OR "1"="1')) == []
    found = store.events(EventQuery(prediction_id="pred-2"))
    assert [row["event_type"] for row in found] == ["PredictionMade"]
    assert len(store.events(EventQuery(limit=5, after=20))) == 3


def test_entries_keep_their_order_and_coordinates(store: SqlAuditStore) -> None:
    rows = list(store.chain_rows())
    assert [r[0] for r in rows] == list(range(1, 24))
    assert [r[4] for r in rows] == list(range(23))
    assert to_entry(captured(sample_events())[0]).value_sha256 == rows[0][7]
