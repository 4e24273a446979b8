"""`mlops up --profile cluster`: three KRaft brokers (replication 3, min.insync.replicas 2) on the
locked-down bus, PostgreSQL (the audit store) with an MLflow tracking server on it, Redis (Feast's online
store), the services on top,
and drills, each with records streaming through ingest:
- an ingest instance is killed with SIGKILL: the other takes its partitions over;
- the audit instance that publishes checkpoints is killed with SIGKILL: the other takes its partitions
  and the checkpoint lease over, every clean event is audited once and the chain verifies;
- the training instance running a request is killed with SIGKILL mid-run: the other takes the request
  over once the dead claim expires, and the request is decided once;
- the active drift instance is killed with SIGKILL mid-stream: the standby takes the lease and the
  saved watch over, and its detectors see every clean record once;
- the broker that leads a partition of raw records is killed with SIGKILL: producers and consumers carry
  on, every record gets exactly one outcome, and the audit chain verifies against Kafka;
- PostgreSQL and Redis are killed with SIGKILL: the audit and features services wait (their readiness
  and logs say so), and once `mlops up` has started both again, every event is audited exactly once and
  every entity's features are online."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from contracts.topics import RECORDS_CLEAN, RECORDS_RAW, topic_names
from infra.mlflow_server import credentials
from infra.postgres_local import AUDIT_APP, AUDIT_OWNER, LocalPostgres
from infra.redis_local import LocalRedis
from infra.supervisor import SERVICE_ORDER
from tests.e2e.cluster_drills import drift_takeover, training_takeover
from tests.e2e.cluster_reads import (
    chain_length,
    clean_records,
    doubled,
    execute,
    lease_holder,
    offline_rows,
    outcomes,
    said,
    tracking_server_answers,
)
from tests.e2e.cluster_stack import (
    FIRST_SERVICE_PORT,
    SERVICES,
    bootstrap,
    cluster_of,
    cluster_stack,  # noqa: F401  (the module's fixture, `stack`)
    components,
    describe,
    each_once,
    finished,
    lines_about,
    settings_of,
    stream,
    verified,
)
from tests.e2e.stack import logs, wait_for
from tests.e2e.test_cli import mlops
from tests.e2e.test_dependency_outage import ready, recorded

# Whole-stack drills with three brokers: each takes 1-2 minutes alone, more beside the other lane.
pytestmark = pytest.mark.timeout(900)


def test_three_brokers_replicate_every_platform_topic_and_status_lists_them(stack: dict[str, str]) -> None:
    rows = components(stack)
    servers = ("kafka", "kafka-2", "kafka-3", "postgres", "mlflow", "redis")
    assert {rows[name]["health"] for name in servers} == {"ready"}, rows
    # The tracking server answers nobody without the platform's login: no run, model or artifact.
    search = f"{rows['mlflow']['url']}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, timeout=30).status_code == 401
    assert httpx.get(search, auth=("mlops", "guessed"), timeout=30).status_code == 401
    upload = f"{rows['mlflow']['url']}/api/2.0/mlflow-artifacts/artifacts/forged/model.pkl"
    assert httpx.put(upload, content=b"not a model", timeout=30).status_code == 401
    login = credentials(settings_of(stack).secrets_dir)
    assert httpx.get(search, auth=(login["username"], login["password"]), timeout=30).status_code == 200
    described = asyncio.run(describe())
    assert {t["topic"] for t in described} == set(topic_names())
    for topic in described:
        for partition in topic["partitions"]:
            assert len(partition["replicas"]) == 3 and len(partition["isr"]) == 3, (topic["topic"], partition)
    record_partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert record_partitions[RECORDS_RAW] >= 3


def test_killing_ingest_and_features_instances_mid_stream_moves_their_partitions_and_loses_nothing(
    stack: dict[str, str],
) -> None:
    status = components(stack)
    instances = ("ingest", "ingest-2", "features", "features-2")
    assert {status[name]["health"] for name in instances} == {"ready"}, status
    before = asyncio.run(outcomes(bootstrap()))
    producing = stream(stack)
    wait_for(lambda: len(asyncio.run(outcomes(bootstrap()))) - len(before) >= 300, 180, "the first outcomes")
    for name in ("ingest", "features"):
        os.kill(int(status[name]["pid"]), signal.SIGKILL)  # instance 1 of each, mid-stream
    finished(producing)  # instance 2 of each took the partitions over
    each_once(before)

    # Every clean record's features are online once (one Redis hash per entity: nothing else) and in
    # the offline store; a row there twice can only be the same row (the batch in flight at the kill,
    # pushed again: at-least-once, which Feast's point-in-time join reads as one).
    _, entities = clean_records(bootstrap())
    redis = LocalRedis(settings_of(stack)).client()
    wait_for(lambda: redis.dbsize() == len(entities), 240, f"{len(entities)} entities online")
    offline = settings_of(stack).state_dir / "feast" / "offline" / "loan_applications"
    rows = wait_for(
        lambda: (r := offline_rows(offline)) and {e for e, _ in r} >= entities and r, 240, "offline"
    )
    assert {entity for entity, _ in rows} == entities
    assert all(len(copies) == 1 for copies in rows.values()), "one entity and time, different values"
    print(f"offline rows pushed twice (identical): {sum(c.total() for c in rows.values()) - len(rows)}")

    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0, up.stderr  # the killed instances start again, for the drills after


PUBLISHES = "this instance publishes the checkpoints now"


def test_killing_the_audit_instance_that_checkpoints_hands_its_partitions_and_lease_over(
    stack: dict[str, str],
) -> None:
    status = components(stack)
    assert status["audit"]["health"] == status["audit-2"]["health"] == "ready", status
    store = LocalPostgres(settings_of(stack)).url(AUDIT_APP, "audit")
    holder = wait_for(
        lambda: lease_holder(stack, ("audit", "audit-2")), 120, "an audit instance with the lease"
    )
    survivor = "audit-2" if holder == "audit" else "audit"
    taken_before = said(stack, survivor, PUBLISHES)  # 0 unless it held the lease once already
    before = recorded(store, RECORDS_CLEAN)
    producing = stream(stack)
    wait_for(lambda: recorded(store, RECORDS_CLEAN) - before >= 300, 180, "the first records audited")
    os.kill(int(status[holder]["pid"]), signal.SIGKILL)  # mid-stream, holding the lease
    length_at_kill = chain_length(store)
    wait_for(lambda: said(stack, survivor, PUBLISHES) > taken_before, 120, f"{survivor} to take the lease")
    finished(producing)

    ids, _ = clean_records(bootstrap())
    try:  # the survivor took the dead instance's partitions over: every clean event is audited
        wait_for(lambda: recorded(store, RECORDS_CLEAN) == len(ids), 240, "every clean event audited")
    except AssertionError:
        counts = f"{recorded(store, RECORDS_CLEAN)} audited of {len(ids)} clean events"
        raise AssertionError(f"{counts}\n{logs(Path(stack['MLOPS_STATE_DIR']))}") from None
    assert doubled(store, RECORDS_CLEAN) == 0  # and none twice, though both appended the same chain
    # The survivor's checkpoints anchor the chain beyond where it stood at the kill.
    report = wait_for(
        lambda: ((r := verified(stack))["last_checkpoint_length"] or 0) > length_at_kill and r, 120,
        f"a checkpoint beyond row {length_at_kill}",
    )  # fmt: skip
    assert report["checked"] >= report["last_checkpoint_length"]

    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0, up.stderr  # the killed instance is started again; the rest ran on
    again = components(stack)
    assert again[holder]["pid"] != status[holder]["pid"] and again[holder]["health"] == "ready", again


# Training: the instance running a request is killed mid-run; the other takes the run over once the
# dead claim expires, and the request is decided once. Drift: the active instance is killed
# mid-stream; the standby takes the lease and the saved watch over, and sees every record once.
@pytest.mark.parametrize(
    ("service", "drill"),
    [("training", training_takeover), ("drift", drift_takeover)],
    ids=["training-claim-taken-over", "drift-standby-takes-over"],
)
def test_killing_the_instance_that_holds_a_services_work_hands_it_to_the_other(
    stack: dict[str, str], service: str, drill: Callable[..., None]
) -> None:
    status = components(stack)
    assert status[service]["health"] == status[f"{service}-2"]["health"] == "ready", status
    drill(stack, status, bootstrap())
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0, up.stderr  # the killed instance starts again, for the drills after


def test_killing_the_leader_of_a_raw_partition_mid_stream_loses_and_doubles_nothing(
    stack: dict[str, str],
) -> None:
    cluster = cluster_of(stack)
    before = asyncio.run(outcomes(bootstrap()))
    producing = stream(stack)
    wait_for(lambda: len(asyncio.run(outcomes(bootstrap()))) - len(before) >= 300, 180, "the first outcomes")
    leader = cluster.leader_of(RECORDS_RAW, 0)
    assert leader is not None
    killed_at = time.monotonic()
    cluster.kill(leader)  # mid-stream, as a crash: no controlled shutdown
    finished(producing)  # every send acknowledged, after the failover
    each_once(before)

    assert cluster.start_node(leader)  # the node comes back on its data and rejoins
    verified = mlops("audit", "verify", env=stack, timeout=300)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["intact"], verified.stdout + verified.stderr
    print(f"leader {leader} killed; the stream finished {time.monotonic() - killed_at:.1f}s later")


def test_postgresql_and_redis_crashing_mid_stream_stall_their_services_until_up_restarts_them(
    stack: dict[str, str],
) -> None:
    status = components(stack)
    assert status["postgres"]["health"] == status["redis"]["health"] == "ready", status
    store = LocalPostgres(settings_of(stack)).url(AUDIT_APP, "audit")  # the service's login: it may read
    api = {
        name: f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index(name)}"
        for name in ("audit", "features")
    }
    before = recorded(store, RECORDS_CLEAN)
    producing = stream(stack)
    wait_for(lambda: recorded(store, RECORDS_CLEAN) - before >= 300, 180, "the first records audited")
    for name in ("postgres", "redis"):
        os.kill(int(status[name]["pid"]), signal.SIGKILL)  # mid-stream, as crashes

    try:
        for service, dependency in (("audit", "database"), ("features", "redis")):
            # A failed readiness check can answer 503 before a consumer meets the outage and names it.
            waiting = wait_for(
                lambda s=service: (r := ready(api[s])) is not None and r.status_code == 503
                and r.json().get("unavailable") and r, 120,
                f"{service}'s readiness to name the unavailable {dependency}",
            )  # fmt: skip
            assert dependency in waiting.json()["unavailable"], waiting.json()
        assert {components(stack)[name]["health"] for name in ("postgres", "redis")} == {"down"}
    finally:  # restarted even when an assertion above fails, so the next test finds its stores
        up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0 and "already running" not in lines_about(up.stderr, "postgres", "redis"), (
        up.stderr
    )
    restarted = components(stack)
    assert all(
        restarted[n]["pid"] != status[n]["pid"] and restarted[n]["health"] == "ready"
        for n in ("postgres", "redis")
    )
    finished(producing)

    for service in ("audit", "features"):
        wait_for(
            lambda s=service: (r := ready(api[s])) is not None and r.status_code == 200, 240, f"{service}"
        )
    ids, entities = clean_records(bootstrap())  # every clean event, by id, and its entity
    try:
        wait_for(lambda: recorded(store, RECORDS_CLEAN) == len(ids), 240, "every clean event audited")
    except AssertionError:
        counts = f"{recorded(store, RECORDS_CLEAN)} audited of {len(ids)} clean events"
        raise AssertionError(f"{counts}\n{logs(Path(stack['MLOPS_STATE_DIR']))}") from None
    assert doubled(store, RECORDS_CLEAN) == 0  # and no Kafka record twice
    # One hash per entity in Redis: every entity of every clean record is online, and nothing else is.
    redis = LocalRedis(settings_of(stack)).client()
    wait_for(lambda: redis.dbsize() == len(entities), 240, f"{len(entities)} entities online")
    logs_dir = Path(stack["MLOPS_STATE_DIR"]) / "logs"
    for service, dependency in (("audit", "database"), ("features", "redis")):
        log = (logs_dir / f"{service}.log").read_text()
        assert f"{dependency} is unavailable" in log and f"{dependency} is back after" in log, service
    verified = mlops("audit", "verify", env=stack, timeout=300)
    assert verified.returncode == 0 and json.loads(verified.stdout)["intact"], (
        verified.stdout + verified.stderr
    )
    # The tracking server on the same database came back with it: it answers a query again.
    url = components(stack)["mlflow"]["url"]
    wait_for(
        lambda: tracking_server_answers(settings_of(stack), url), 120, "the MLflow server to answer again"
    )


def test_raw_sql_against_the_clusters_audit_store_is_refused_or_caught_by_verify(
    stack: dict[str, str],
) -> None:
    """Last in this module: it leaves the chain broken on purpose."""
    postgres = LocalPostgres(settings_of(stack))
    service, owner = postgres.url(AUDIT_APP, "audit"), postgres.url(AUDIT_OWNER, "audit")
    row = "UPDATE audit_events SET producer = 'forged' WHERE seq = 5"
    # The audit service's own login (audit_app) may only read and append.
    for statement in (row, "ALTER TABLE audit_events DISABLE TRIGGER USER", "SET ROLE audit_owner"):
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
            execute(service, statement)
    # The table's owner, whose password only `mlops up` uses, meets the append-only triggers...
    for statement in (row, "DELETE FROM audit_events WHERE seq > 5", "TRUNCATE audit_events"):
        with pytest.raises(DBAPIError, match="audit_events is append-only"):
            execute(owner, statement)
    # ...and may switch them off and rewrite a row, as may a superuser: verify catches both.
    execute(owner, "ALTER TABLE audit_events DISABLE TRIGGER USER", row)
    verified = mlops("audit", "verify", env=stack, timeout=300)
    report = json.loads(verified.stdout)
    assert verified.returncode != 0 and report["intact"] is False, verified.stdout
    problems = " ".join(report["problems"])
    assert "missing or disabled" in problems and re.search(r"\brow 5\b", problems), report["problems"]
