"""One contract suite run against every storage adapter (a real SQLite file, a real PostgreSQL
database): the Alembic migration, append-only guards, idempotent appends, queries, lineage, and
tampering by raw SQL (guards dropped first, as an attacker with database access would) detected by
verify. PostgreSQL also gets the application role's grants (SELECT and INSERT only)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, ProgrammingError
from sqlalchemy.pool import NullPool

from services.audit.adapters.query import EventQuery
from services.audit.adapters.schema import metadata
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.entry import to_entry
from services.audit.handlers import AuditService
from services.audit.lineage import lineage
from services.audit.verification import verify_store
from tests.support_postgres import PostgresCluster
from tests.unit.test_audit_support import as_attacker, audit_samples, captured, lineage_flow, open_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes URLs of fresh, empty databases on the backend under test."""
    if request.param == "sqlite":
        names = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'audit{next(names)}.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database


def filled(url: str, app_role: str | None = None) -> SqlAuditStore:
    store = open_store(url, app_role)
    events = audit_samples() + lineage_flow() + lineage_flow("pred-2", version="8")
    AuditService(store).capture(captured(events, topic="mixed"))  # 23 rows, seq 1..23
    return store


@pytest.fixture
def store(new_url: Callable[[], str]) -> Iterator[SqlAuditStore]:
    store = filled(new_url())
    yield store
    store.dispose()


def test_the_migration_builds_exactly_the_schema_the_code_queries(store: SqlAuditStore) -> None:
    with store.reader.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.migrate()  # a second run (every service start) changes nothing
    assert store.head()[0].length == 23 and verify_store(store).ok


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET entity_id = 'x' WHERE seq = 3", "DELETE FROM audit_events WHERE seq = 3"],
)
def test_the_database_refuses_update_and_delete(store: SqlAuditStore, statement: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), store.writer.begin() as conn:
        conn.execute(text(statement))
    assert verify_store(store).ok


def test_postgresql_refuses_truncate(postgres_url: str) -> None:
    store = filled(postgres_url)
    with pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"), store.writer.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert store.head()[0].length == 23
    store.dispose()


@pytest.fixture
def app_role(postgres_cluster: PostgresCluster) -> str:
    role = f"audit_app_{uuid.uuid4().hex[:8]}"  # roles are cluster-wide: one per test
    postgres_cluster.execute(f"CREATE ROLE {role} LOGIN")
    return role


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET entity_id = 'x' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 3",
        "TRUNCATE audit_events",
        "DROP TRIGGER audit_events_no_update_delete ON audit_events",  # nor may it drop the guards
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    ],
)
def test_the_application_role_may_only_select_and_insert_even_without_the_triggers(
    postgres_url: str, app_role: str, statement: str
) -> None:
    store = filled(postgres_url, app_role)  # appended through the role: the grants are enough for that
    if "TRIGGER" not in statement:
        as_attacker(store)  # the owner drops the guards: the grants still hold
    as_role = create_engine(
        make_url(postgres_url).set(username=app_role).render_as_string(hide_password=False),
        poolclass=NullPool,
    )
    refused = r"permission denied|must be owner"
    for engine in (as_role, store.writer):  # a session that logs in as the role, and the store's (SET ROLE)
        with pytest.raises(ProgrammingError, match=refused), engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar() == app_role
            conn.execute(text(statement))
    as_role.dispose()
    assert store.head()[0].length == 23
    store.dispose()


def test_the_service_appends_migrates_and_verifies_as_the_application_role(
    postgres_url: str, app_role: str
) -> None:
    filled(postgres_url, app_role).dispose()  # the owner migrates and grants
    as_role = make_url(postgres_url).set(username=app_role).render_as_string(hide_password=False)
    store = open_store(as_role, app_role)  # a service that logs in as the role: migrate is a no-op
    assert AuditService(store).capture(captured(lineage_flow("p-role"), topic="other")).appended == 5
    report = verify_store(store, workers=2, min_range=5)
    assert report.ok and report.checked == 28
    with store.reader.connect() as conn:
        owner = conn.exec_driver_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'")
        assert owner.scalar() != app_role
    store.dispose()


def test_concurrent_appenders_never_fork_the_chain(store: SqlAuditStore) -> None:
    # Separate engines, as separate processes would have; the same subject secret.
    others = [SqlAuditStore(store.url, subject_keys=store.subject_keys) for _ in range(3)]
    batches = [captured(lineage_flow(f"p-{i}"), topic=f"t{i}") for i in range(12)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: AuditService(others[i % 3]).capture(batches[i]), range(12)))
    assert sum(r.appended for r in results) == 60
    report = verify_store(store)
    assert report.ok and report.checked == 83
    for other in others:
        other.dispose()


def test_a_redelivered_batch_or_a_republished_event_is_appended_once(store: SqlAuditStore) -> None:
    again = captured(audit_samples() + lineage_flow(), topic="mixed")  # same coordinates
    republished = captured(audit_samples(), topic="mixed", first_offset=100)  # same ids, new offsets
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
    store: SqlAuditStore, new_url: Callable[[], str]
) -> None:
    anchor = {store.head()[0].length: store.head()[0].hash.hex()}
    forged = open_store(new_url())  # the attacker replays altered events into a fresh chain
    events = audit_samples() + lineage_flow() + lineage_flow("pred-2", version="9")
    AuditService(forged).capture(captured(events, topic="mixed"))
    assert verify_store(forged).ok
    report = verify_store(forged, anchors=anchor)
    assert not report.ok and report.broken_at == 23 and "checkpoint" in (report.reason or "")
    forged.dispose()


INJECTIONS = ["' OR 1=1 --", 'PredictionMade" OR "1"="1', "x'; DROP TABLE audit_events; --", "%", "*", "\\"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_queries_bind_every_value(store: SqlAuditStore, value: str) -> None:
    for name in ("event_type", "topic", "entity_id", "model_name", "model_version", "correlation_id"):
        assert store.events(EventQuery(**{name: value})) == []
    assert store.head()[0].length == 23 and verify_store(store).ok


def test_queries_select_and_page(store: SqlAuditStore) -> None:
    found = store.events(EventQuery(prediction_id="pred-2"))
    assert [row["event_type"] for row in found] == ["PredictionMade"]
    assert len(store.events(EventQuery(limit=5, after=20))) == 3


def test_entries_keep_their_order_and_coordinates(store: SqlAuditStore) -> None:
    rows = list(store.chain_rows())
    assert [r[0] for r in rows] == list(range(1, 24))
    assert [r[4] for r in rows] == list(range(23))
    assert to_entry(captured(audit_samples())[0]).value_sha256 == rows[0][7]


def test_lineage_follows_the_stored_flow(store: SqlAuditStore) -> None:
    found = lineage(store, "pred-2")
    assert found["missing"] == [] and found["model"] == {"name": "fraud", "version": "8"}
    assert found["training_run"]["event_type"] == "ModelTrained"
    assert found["drift"]["event_type"] == "DriftDetected"


def test_lineage_lists_the_predictions_labels_with_their_task_and_cause(tmp_path: Path) -> None:
    from contracts.events import LabelObserved, LabelObservedPayload, PredictionMade

    flow = lineage_flow("pred-9", version="3")
    prediction = next(e for e in flow if isinstance(e, PredictionMade))

    def label(source: str, caused_by: PredictionMade | None, **extra: Any) -> LabelObserved:
        payload = LabelObservedPayload(
            dataset="loans", entity_id="app-9", label="bad", event_time=prediction.occurred_at,
            prediction_id="pred-9", source=source, **extra,  # type: ignore[arg-type]
        )  # fmt: skip
        return LabelObserved.create(payload, producer=source, caused_by=caused_by)

    annotated = label("annotation", prediction, task_id="41", annotators=["annotator-00ff"], agreement=1.0)
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditService(store).capture(captured([*flow, label("client", None), annotated], topic="mixed"))
    labels = lineage(store, "pred-9")["labels"]
    assert [(x["source"], x["task_id"], x["caused_by_prediction"]) for x in labels] == [
        ("client", None, False),
        ("annotation", "41", True),
    ]
    assert labels[1]["annotators"] == ["annotator-00ff"] and labels[1]["agreement"] == 1.0
    assert labels[1]["event"]["event"]["payload"]["task_id"] == "41"
    store.dispose()


def test_postgresql_finds_duplicates_by_index_before_its_first_analyze(
    postgres_cluster: PostgresCluster,
) -> None:
    """A fresh chain has no planner statistics until autovacuum's first ANALYZE, a minute or more
    later: the duplicate lookups (`event_id IN (...)`, 500 at a time) were planned as sequential
    scans, reading the whole table per chunk (0.9-2.6 million rows per benchmark phase, see
    docs/benchmarks.md, "The cluster profile"). Counted within the transaction, so no stats flush."""
    store = open_store(postgres_cluster.create_database())
    try:
        service = AuditService(store)
        stored = [e for n in range(500) for e in lineage_flow(f"p-{n}")]
        service.capture(captured(stored, topic="stored"))  # 2,500 rows, never analyzed
        new = [e for n in range(100) for e in lineage_flow(f"new-{n}")]
        entries = [to_entry(c) for c in captured(stored[:500], topic="again") + captured(new, topic="new")]
        with store.writer.begin() as conn:
            fresh = store._fresh(conn, entries)
            seq_read, index_fetched = conn.execute(
                text(
                    "SELECT pg_stat_get_xact_tuples_returned('audit_events'::regclass),"
                    " pg_stat_get_xact_tuples_fetched('audit_events'::regclass)"
                )
            ).one()
        assert len(fresh) == len(new)  # the 500 republished ones were found
        assert seq_read == 0 and index_fetched >= 500, (seq_read, index_fetched)
    finally:
        store.dispose()
