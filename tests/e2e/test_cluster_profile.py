"""`mlops up --profile cluster`: three KRaft brokers (replication 3, min.insync.replicas 2) on the
locked-down bus, PostgreSQL (the audit store) with an MLflow tracking server on it, the services on top,
and drills, each with records streaming through ingest:
- an ingest instance is killed with SIGKILL: the other takes its partitions over;
- the broker that leads a partition of raw records is killed with SIGKILL: producers and consumers carry
  on, every record gets exactly one outcome, and the audit chain verifies against Kafka;
- PostgreSQL is killed with SIGKILL: the audit service waits (its readiness and log say so), and once
  `mlops up` has started the database again, every event is recorded exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mlflow import MlflowClient
from sqlalchemy import create_engine, text

from contracts.topics import RECORDS_CLEAN, RECORDS_RAW, RECORDS_REJECTED, topic_names
from infra.bus_access import kafka_options, remember_stack
from infra.kafka_cluster import LocalKafkaCluster
from infra.postgres_local import AUDIT_OWNER, LocalPostgres
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER
from tests.e2e.stack import logs, stack_env, wait_for
from tests.e2e.test_cli import mlops
from tests.e2e.test_dependency_outage import ready, recorded
from tests.support import TEST_KAFKA_PORT
from tests.support_postgres import reachable_state_dir

PORT = TEST_KAFKA_PORT + 1100  # nodes on PORT, PORT + 10, PORT + 20 (controllers one above each)
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 6000
SERVICES = "ingest,features,audit"
ROWS = 3000


@pytest.fixture(scope="module")
def stack(jars_dir: Path) -> Iterator[dict[str, str]]:
    state = reachable_state_dir()  # PostgreSQL's OS user must reach its data folder in it
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    env["MLOPS_KAFKA_START_TIMEOUT_S"] = "240"
    env["MLOPS_POSTGRES_PORT"], env["MLOPS_MLFLOW_PORT"] = str(PORT + 30), str(PORT + 40)
    remember_stack(state, _bootstrap())  # this test's own clients reach the cluster as its super user
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=env, timeout=600)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        down = mlops("down", env=env, timeout=180)  # no --profile: `up` remembered it
        shutil.rmtree(state, ignore_errors=True)
        said = down.stdout + down.stderr
        assert all(f"{name}: stopped" in said for name in ("kafka-3", "postgres", "mlflow")), said


def _settings(env: dict[str, str]) -> InfraSettings:
    return InfraSettings(
        state_dir=Path(env["MLOPS_STATE_DIR"]), jars_dir=Path(env["MLOPS_JARS_DIR"]), kafka_port=PORT,
        profile="cluster", kafka_bootstrap_servers=None, postgres_port=int(env["MLOPS_POSTGRES_PORT"]),
        mlflow_port=int(env["MLOPS_MLFLOW_PORT"]),
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
    assert {rows[name]["health"] for name in ("kafka", "kafka-2", "kafka-3", "postgres", "mlflow")} == {
        "ready"
    }
    described = asyncio.run(_describe())
    assert {t["topic"] for t in described} == set(topic_names())
    for topic in described:
        for partition in topic["partitions"]:
            assert len(partition["replicas"]) == 3 and len(partition["isr"]) == 3, (topic["topic"], partition)
    record_partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert record_partitions[RECORDS_RAW] >= 3


async def _outcomes(bootstrap: str) -> dict[tuple[int, int], set[str]]:
    """Every outcome event id of each raw record (partition, offset), read to the end of both topics."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics([RECORDS_CLEAN, RECORDS_REJECTED])
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[tuple[int, int], set[str]] = defaultdict(set)
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    source = event["payload"]["source"]
                    found[(source["partition"], source["offset"])].add(event["event_id"])
        return found
    finally:
        await consumer.stop()


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
    outcomes = asyncio.run(_outcomes(_bootstrap()))
    doubled = {source: ids for source, ids in outcomes.items() if len(ids) > 1}
    assert len(outcomes) - len(before) == ROWS and not doubled, (len(outcomes), list(doubled.items())[:5])


def test_killing_an_ingest_instance_mid_stream_moves_its_partitions_and_loses_and_doubles_nothing(
    stack: dict[str, str],
) -> None:
    status = _status(stack)
    assert status["ingest"]["health"] == status["ingest-2"]["health"] == "ready", status
    before = asyncio.run(_outcomes(_bootstrap()))
    producing = _stream(stack)
    wait_for(
        lambda: len(asyncio.run(_outcomes(_bootstrap()))) - len(before) >= 300, 180, "the first outcomes"
    )
    os.kill(int(status["ingest"]["pid"]), signal.SIGKILL)  # instance 1, mid-stream
    _finished(producing)  # instance 2 took its partitions over
    _each_once(before)


def test_killing_the_leader_of_a_raw_partition_mid_stream_loses_and_doubles_nothing(
    stack: dict[str, str],
) -> None:
    cluster = _cluster(stack)
    before = asyncio.run(_outcomes(_bootstrap()))
    producing = _stream(stack)
    wait_for(
        lambda: len(asyncio.run(_outcomes(_bootstrap()))) - len(before) >= 300, 180, "the first outcomes"
    )
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


def _doubled(url: str, topic: str) -> int:
    """Rows of `topic` in the audit store beyond one per Kafka record."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = 'SELECT count(*) - count(DISTINCT (partition, "offset")) FROM audit_events WHERE topic = :t'
            return int(conn.execute(text(sql), {"t": topic}).scalar_one())
    finally:
        engine.dispose()


def _ends(topic: str) -> int:
    """Records in `topic` (the sum of its partitions' end offsets)."""

    async def read() -> int:
        admin = AIOKafkaAdminClient(**kafka_options(_bootstrap()))
        await admin.start()
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
        consumer = AIOKafkaConsumer(**kafka_options(_bootstrap()), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14's stop() without a group
                await consumer.stop()

    return asyncio.run(read())


def test_a_postgresql_crash_mid_stream_stalls_the_audit_trail_until_up_restarts_it_and_loses_nothing(
    stack: dict[str, str],
) -> None:
    status = _status(stack)
    assert status["postgres"]["health"] == "ready", status
    store = LocalPostgres(_settings(stack)).url(AUDIT_OWNER, "audit")
    audit_api = f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index('audit')}"
    before = recorded(store, RECORDS_CLEAN)
    producing = _stream(stack)
    wait_for(lambda: recorded(store, RECORDS_CLEAN) - before >= 300, 180, "the first records audited")
    os.kill(int(status["postgres"]["pid"]), signal.SIGKILL)  # mid-stream, as a crash

    waiting = wait_for(
        lambda: (r := ready(audit_api)) is not None and r.status_code == 503 and r,
        120, "the audit service's readiness to name the unavailable database",
    )  # fmt: skip
    assert "database" in waiting.json()["unavailable"], waiting.json()
    assert _status(stack)["postgres"]["health"] == "down"
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=stack, timeout=600)
    assert up.returncode == 0 and "postgres" in up.stderr, up.stderr
    _finished(producing)

    wait_for(
        lambda: (r := ready(audit_api)) is not None and r.status_code == 200, 240, "the audit to be ready"
    )
    wait_for(
        lambda: recorded(store, RECORDS_CLEAN) == _ends(RECORDS_CLEAN), 240, "every clean record audited"
    )
    assert _doubled(store, RECORDS_CLEAN) == 0
    log = (Path(stack["MLOPS_STATE_DIR"]) / "logs" / "audit.log").read_text()
    assert "database is unavailable" in log and "database is back after" in log
    verified = mlops("audit", "verify", env=stack, timeout=300)
    assert verified.returncode == 0 and json.loads(verified.stdout)["intact"], (
        verified.stdout + verified.stderr
    )
    # The tracking server on the same database came back with it: it answers a query again.
    tracking = MlflowClient(_status(stack)["mlflow"]["url"])
    wait_for(lambda: _answers(tracking), 120, "the MLflow server to answer again")


def _answers(tracking: MlflowClient) -> bool:
    try:
        tracking.search_experiments(max_results=1)
    except Exception:  # a pooled connection from before the crash fails once
        return False
    return True
