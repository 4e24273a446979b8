"""Test tiers: unit (no Kafka), integration and e2e (the real broker, started here through infra/).

The broker for tests runs on its own ports and state folder, so a developer's running stack is
untouched. Set KAFKA_BOOTSTRAP_SERVERS to run the same tests against an existing cluster instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka_local import LocalKafka
from infra.processes import pid_alive
from infra.settings import REPO_ROOT, InfraSettings
from tests.support import TEST_KAFKA_PORT

# PostgreSQL for the tests that run against every storage adapter (a throwaway cluster, started on use).
from tests.support_postgres import postgres_cluster, postgres_url  # noqa: F401

TEST_STATE_DIR = Path(os.environ.get("MLOPS_TEST_STATE_DIR", REPO_ROOT / ".local" / "test"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def jars_dir() -> Path:
    return InfraSettings().jars_dir


@pytest.fixture(scope="session")
def kafka_bootstrap(jars_dir: Path) -> Iterator[str]:
    """Bootstrap address of a real broker with the platform's topics."""
    from infra.topics import ensure_topics, platform_topics

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        ensure_topics(external, platform_topics(3, 1))
        yield external
        return
    kafka = LocalKafka(
        home=TEST_STATE_DIR / "kafka",
        jars_dir=jars_dir,
        port=TEST_KAFKA_PORT,
        controller_port=TEST_KAFKA_PORT + 1,
    )
    # Several test sessions may share this broker (parallel runs on one machine): each registers
    # itself, and the last one out stops the broker.
    users = TEST_STATE_DIR / "kafka-users"
    users.mkdir(parents=True, exist_ok=True)
    me = users / str(os.getpid())
    me.touch()
    try:
        kafka.start(timeout_s=90)
        ensure_topics(kafka.bootstrap_servers, platform_topics(3, 1))
        yield kafka.bootstrap_servers
    finally:  # also when start-up failed: a stale registration would keep the broker up forever
        me.unlink(missing_ok=True)
        if not any(pid_alive(int(p.name)) for p in users.iterdir() if p.name.isdigit()):
            kafka.stop()


@pytest.fixture
def unique_topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"
