"""The cluster-profile stack the drills of test_cluster_profile.py share (one per module: three KRaft
brokers, PostgreSQL, an MLflow server, Redis, and ingest, features, training, drift and audit, two
instances of each: drift's as one active and one standby), and the stream each drill runs through it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import topic_names
from infra.bus_access import kafka_options, remember_stack
from infra.kafka_cluster import LocalKafkaCluster
from infra.settings import REPO_ROOT, InfraSettings
from tests.e2e.cluster_reads import outcomes
from tests.e2e.stack import logs, stack_env
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT
from tests.support_postgres import reachable_state_dir

PORT = TEST_KAFKA_PORT + 1100  # nodes on PORT, PORT + 10, PORT + 20 (controllers one above each)
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 6000
SERVICES = "ingest,features,training,drift,audit"
ROWS = 3000


@pytest.fixture(scope="module", name="stack")
def cluster_stack(jars_dir: Path) -> Iterator[dict[str, str]]:
    state = reachable_state_dir()  # PostgreSQL's OS user must reach its data folder in it
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    env["MLOPS_KAFKA_START_TIMEOUT_S"] = "240"
    env["MLOPS_POSTGRES_PORT"], env["MLOPS_MLFLOW_PORT"] = str(PORT + 30), str(PORT + 40)
    env["MLOPS_REDIS_PORT"] = str(PORT + 50)
    env["AUDIT_CHECKPOINT_INTERVAL_S"] = "2"  # the audit drill waits for a checkpoint after a kill
    env["TRAINING_RUN_CLAIM_LEASE_S"] = "6"  # the training drill waits for a dead instance's claim
    remember_stack(state, bootstrap())  # this test's own clients reach the cluster as its super user
    up = mlops("up", "--profile", "cluster", "--services", SERVICES, env=env, timeout=600)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        down = mlops("down", env=env, timeout=180)  # no --profile: `up` remembered it
        shutil.rmtree(state, ignore_errors=True)
        told = down.stdout + down.stderr
        assert all(f"{name}: stopped" in told for name in ("kafka-3", "postgres", "mlflow", "redis")), told


def settings_of(env: dict[str, str]) -> InfraSettings:
    return InfraSettings(
        state_dir=Path(env["MLOPS_STATE_DIR"]), jars_dir=Path(env["MLOPS_JARS_DIR"]), kafka_port=PORT,
        profile="cluster", kafka_bootstrap_servers=None, postgres_port=int(env["MLOPS_POSTGRES_PORT"]),
        mlflow_port=int(env["MLOPS_MLFLOW_PORT"]), redis_port=int(env["MLOPS_REDIS_PORT"]),
    )  # fmt: skip


def components(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    status = mlops("status", "--json", env=env)
    return {row["name"]: row for row in json.loads(status.stdout)["components"]}


def bootstrap() -> str:
    return ",".join(f"127.0.0.1:{PORT + 10 * i}" for i in range(3))


def cluster_of(env: dict[str, str]) -> LocalKafkaCluster:
    return LocalKafkaCluster.from_settings(settings_of(env))


async def describe() -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap()))
    await admin.start()
    try:
        return list(await admin.describe_topics(topic_names()))
    finally:
        await admin.close()


def stream(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "produce", "--rows", str(ROWS), "--rate", "300", "--follow"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(producing: subprocess.Popen[str]) -> dict[str, Any]:
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


def each_once(before: dict[tuple[int, int], set[str]]) -> None:
    """The stream's records each have exactly one outcome, and no earlier record got a second one."""
    found = asyncio.run(outcomes(bootstrap()))
    twice = {source: ids for source, ids in found.items() if len(ids) > 1}
    assert len(found) - len(before) == ROWS and not twice, (len(found), list(twice.items())[:5])


def verified(env: dict[str, str]) -> dict[str, Any]:
    """`mlops audit verify`'s report, which must say the chain is intact."""
    run = mlops("audit", "verify", env=env, timeout=300)
    report: dict[str, Any] = json.loads(run.stdout)
    assert run.returncode == 0 and report["intact"], run.stdout + run.stderr
    return report


def lines_about(said: str, *names: str) -> str:
    """The lines of `mlops up`'s output about these components."""
    return "\n".join(line for line in said.splitlines() if line.split(" ", 1)[0] in names)
