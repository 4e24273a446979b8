"""`mlops up --profile cluster`: three KRaft brokers (replication 3, min.insync.replicas 2) on the
locked-down bus, PostgreSQL (the audit store) with an MLflow tracking server on it, Redis (Feast's online
store), the services on top,
and drills, each with records streaming through ingest:
- an ingest instance is killed with SIGKILL: the other takes its partitions over;
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
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from contracts.topics import RECORDS_CLEAN, RECORDS_RAW, topic_names
from infra.bus_access import kafka_options, remember_stack
from infra.kafka_cluster import LocalKafkaCluster
from infra.mlflow_server import credentials
from infra.postgres_local import AUDIT_APP, AUDIT_OWNER, LocalPostgres
from infra.redis_local import LocalRedis
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER
from tests.e2e.cluster_reads import clean_records, doubled, outcomes, tracking_server_answers
from tests.e2e.stack import logs, stack_env, wait_for
from tests.e2e.test_cli import mlops
from tests.e2e.test_dependency_outage import ready, recorded
from tests.support import TEST_KAFKA_PORT
from tests.support_postgres import reachable_state_dir

PORT = TEST_KAFKA_PORT + 1100  # nodes on PORT, PORT + 10, PORT + 20 (controllers one above each)
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 6000
SERVICES = "ingest,features,audit"
ROWS = 3000
# Whole-stack drills with three brokers: each takes 1-2 minutes alone, more beside the other lane.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def stack(jars_dir: Path) -> Iterator[dict[str, str]]:
    state = reachable_state_dir()  # PostgreSQL's OS user must reach its data folder in it
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    env["MLOPS_KAFKA_START_TIMEOUT_S"] = "240"
    env["MLOPS_POSTGRES_PORT"], env["MLOPS_MLFLOW_PORT"] = str(PORT + 30), str(PORT + 40)
    env["MLOPS_REDIS_PORT"] = str(PORT + 50)
    remember_stack(state, _bootstrap())  # this test's own clients reach the cluster as its super user
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=env, timeout=600)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        down = mlops("down", env=env, timeout=180)  # no --profile: `up` remembered it
        shutil.rmtree(state, ignore_errors=True)
        said = down.stdout + down.stderr
        assert all(f"{name}: stopped" in said for name in ("kafka-3", "postgres", "mlflow", "redis")), said


def _settings(env: dict[str, str]) -> InfraSettings:
    return InfraSettings(
        state_dir=Path(env["MLOPS_STATE_DIR"]), jars_dir=Path(env["MLOPS_JARS_DIR"]), kafka_port=PORT,
        profile="cluster", kafka_bootstrap_servers=None, postgres_port=int(env["MLOPS_POSTGRES_PORT"]),
        mlflow_port=int(env["MLOPS_MLFLOW_PORT"]), redis_port=int(env["MLOPS_REDIS_PORT"]),
    )  # fmt: skip


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    status = mlops("status", "--json", env=env)
    return {row["name"]: row for row in json.loads(status.stdout)["components"]}


def _bootstrap() -> str:
    return ",".join(f"127.0.0.1:{PORT + 10 * i}" for i in range(3))


def _cluster(env: dict[str, str]) -> LocalKafkaCluster:
    return LocalKafkaCluster.from_settings(_settings(env))


async def _describe() -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(**kafka_options(_bootstrap()))
    await admin.start()
    try:
        return list(await admin.describe_topics(topic_names()))
    finally:
        await admin.close()


def test_three_brokers_replicate_every_platform_topic_and_status_lists_them(stack: dict[str, str]) -> None:
    rows = _status(stack)
    servers = ("kafka", "kafka-2", "kafka-3", "postgres", "mlflow", "redis")
    assert {rows[name]["health"] for name in servers} == {"ready"}, rows
    # The tracking server answers nobody without the platform's login: no run, model or artifact.
    search = f"{rows['mlflow']['url']}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, timeout=30).status_code == 401
    assert httpx.get(search, auth=("mlops", "guessed"), timeout=30).status_code == 401
    upload = f"{rows['mlflow']['url']}/api/2.0/mlflow-artifacts/artifacts/forged/model.pkl"
    assert httpx.put(upload, content=b"not a model", timeout=30).status_code == 401
    login = credentials(_settings(stack).secrets_dir)
    assert httpx.get(search, auth=(login["username"], login["password"]), timeout=30).status_code == 200
    described = asyncio.run(_describe())
    assert {t["topic"] for t in described} == set(topic_names())
    for topic in described:
        for partition in topic["partitions"]:
            assert len(partition["replicas"]) == 3 and len(partition["isr"]) == 3, (topic["topic"], partition)
    record_partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert record_partitions[RECORDS_RAW] >= 3


def _stream(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "produce", "--rows", str(ROWS), "--rate", "300", "--follow"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finished(producing: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = producing.communicate(timeout=600)
    finally:
        if producing.poll() is None:
            producing.kill()
    assert producing.returncode == 0, err[-3000:]
    summary: dict[str, Any] = json.loads(out)
    # The producer carried on and followed every record to its outcome.
    assert summary["outcomes"]["missing"] == 0 and summary["outcomes"]["clean"] == ROWS, summary
    return summary


def _each_once(before: dict[tuple[int, int], set[str]]) -> None:
    """The stream's records each have exactly one outcome, and no earlier record got a second one."""
    found = asyncio.run(outcomes(_bootstrap()))
    twice = {source: ids for source, ids in found.items() if len(ids) > 1}
    assert len(found) - len(before) == ROWS and not twice, (len(found), list(twice.items())[:5])


def test_killing_an_ingest_instance_mid_stream_moves_its_partitions_and_loses_and_doubles_nothing(
    stack: dict[str, str],
) -> None:
    status = _status(stack)
    assert status["ingest"]["health"] == status["ingest-2"]["health"] == "ready", status
    before = asyncio.run(outcomes(_bootstrap()))
    producing = _stream(stack)
    wait_for(lambda: len(asyncio.run(outcomes(_bootstrap()))) - len(before) >= 300, 180, "the first outcomes")
    os.kill(int(status["ingest"]["pid"]), signal.SIGKILL)  # instance 1, mid-stream
    _finished(producing)  # instance 2 took its partitions over
    _each_once(before)


def test_killing_the_leader_of_a_raw_partition_mid_stream_loses_and_doubles_nothing(
    stack: dict[str, str],
) -> None:
    cluster = _cluster(stack)
    before = asyncio.run(outcomes(_bootstrap()))
    producing = _stream(stack)
    wait_for(lambda: len(asyncio.run(outcomes(_bootstrap()))) - len(before) >= 300, 180, "the first outcomes")
    leader = cluster.leader_of(RECORDS_RAW, 0)
    assert leader is not None
    killed_at = time.monotonic()
    cluster.kill(leader)  # mid-stream, as a crash: no controlled shutdown
    _finished(producing)  # every send acknowledged, after the failover
    _each_once(before)

    assert cluster.start_node(leader)  # the node comes back on its data and rejoins
    verified = mlops("audit", "verify", env=stack, timeout=300)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["intact"], verified.stdout + verified.stderr
    print(f"leader {leader} killed; the stream finished {time.monotonic() - killed_at:.1f}s later")


def test_postgresql_and_redis_crashing_mid_stream_stall_their_services_until_up_restarts_them(
    stack: dict[str, str],
) -> None:
    status = _status(stack)
    assert status["postgres"]["health"] == status["redis"]["health"] == "ready", status
    store = LocalPostgres(_settings(stack)).url(AUDIT_APP, "audit")  # the service's login: it may read
    api = {
        name: f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index(name)}"
        for name in ("audit", "features")
    }
    before = recorded(store, RECORDS_CLEAN)
    producing = _stream(stack)
    wait_for(lambda: recorded(store, RECORDS_CLEAN) - before >= 300, 180, "the first records audited")
    for name in ("postgres", "redis"):
        os.kill(int(status[name]["pid"]), signal.SIGKILL)  # mid-stream, as crashes

    for service, dependency in (("audit", "database"), ("features", "redis")):
        waiting = wait_for(
            lambda s=service: (r := ready(api[s])) is not None and r.status_code == 503 and r, 120,
            f"{service}'s readiness to name the unavailable {dependency}",
        )  # fmt: skip
        assert dependency in waiting.json()["unavailable"], waiting.json()
    assert {_status(stack)[name]["health"] for name in ("postgres", "redis")} == {"down"}
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0 and "already running" not in _lines_about(up.stderr, "postgres", "redis"), (
        up.stderr
    )
    restarted = _status(stack)
    assert all(
        restarted[n]["pid"] != status[n]["pid"] and restarted[n]["health"] == "ready"
        for n in ("postgres", "redis")
    )
    _finished(producing)

    for service in ("audit", "features"):
        wait_for(
            lambda s=service: (r := ready(api[s])) is not None and r.status_code == 200, 240, f"{service}"
        )
    ids, entities = clean_records(_bootstrap())  # every clean event, by id, and its entity
    try:
        wait_for(lambda: recorded(store, RECORDS_CLEAN) == len(ids), 240, "every clean event audited")
    except AssertionError:
        counts = f"{recorded(store, RECORDS_CLEAN)} audited of {len(ids)} clean events"
        raise AssertionError(f"{counts}\n{logs(Path(stack['MLOPS_STATE_DIR']))}") from None
    assert doubled(store, RECORDS_CLEAN) == 0  # and no Kafka record twice
    # One hash per entity in Redis: every entity of every clean record is online, and nothing else is.
    redis = LocalRedis(_settings(stack)).client()
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
    url = _status(stack)["mlflow"]["url"]
    wait_for(lambda: tracking_server_answers(_settings(stack), url), 120, "the MLflow server to answer again")


def _lines_about(said: str, *names: str) -> str:
    return "\n".join(line for line in said.splitlines() if line.split(" ", 1)[0] in names)


def _execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_raw_sql_against_the_clusters_audit_store_is_refused_or_caught_by_verify(
    stack: dict[str, str],
) -> None:
    """Last in this module: it leaves the chain broken on purpose."""
    postgres = LocalPostgres(_settings(stack))
    service, owner = postgres.url(AUDIT_APP, "audit"), postgres.url(AUDIT_OWNER, "audit")
    row = "UPDATE audit_events SET producer = 'forged' WHERE seq = 5"
    # The audit service's own login (audit_app) may only read and append.
    for statement in (row, "ALTER TABLE audit_events DISABLE TRIGGER USER", "SET ROLE audit_owner"):
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
            _execute(service, statement)
    # The table's owner, whose password only `mlops up` uses, meets the append-only triggers...
    for statement in (row, "DELETE FROM audit_events WHERE seq > 5", "TRUNCATE audit_events"):
        with pytest.raises(DBAPIError, match="audit_events is append-only"):
            _execute(owner, statement)
    # ...and may switch them off and rewrite a row, as may a superuser: verify catches both.
    _execute(owner, "ALTER TABLE audit_events DISABLE TRIGGER USER", row)
    verified = mlops("audit", "verify", env=stack, timeout=300)
    report = json.loads(verified.stdout)
    assert verified.returncode != 0 and report["intact"] is False, verified.stdout
    problems = " ".join(report["problems"])
    assert "missing or disabled" in problems and re.search(r"\brow 5\b", problems), report["problems"]
