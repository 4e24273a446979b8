"""Several audit instances on one store (the cluster profile runs two): one at a time holds the lease to
publish checkpoints, the lease ends with its holder however it dies, and the publisher anchors what the
other instances appended. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from contracts.envelope import Event
from services.audit.adapters.lease import CHECKPOINT_LOCK_KEY, CheckpointLease
from services.audit.adapters.store import SqlAuditStore
from services.audit.checkpointer import Checkpointer
from services.audit.handlers import AuditService
from services.audit.settings import AuditSettings
from tests.support_postgres import PostgresCluster
from tests.unit.test_audit_store import filled
from tests.unit.test_audit_support import captured, lineage_flow, open_store

CHECKPOINTS = "audit.checkpoints"
LEASE_OBJID = CHECKPOINT_LOCK_KEY & 0xFFFFFFFF  # pg_locks: the key's low 32 bits
TERMINATE_HOLDER = (  # this database's holder of the lease's key (classid: its high 32 bits; 1: a bigint key)
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"
    " AND classid = :high AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
HOLDER = """
import sys, time
from services.audit.adapters.lease import CHECKPOINT_LOCK_KEY, CheckpointLease
from services.audit.adapters.store import SqlAuditStore
lease = CheckpointLease(SqlAuditStore(sys.argv[1]).writer)
print("held" if lease.held() else "refused", flush=True)
time.sleep(600)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / 'audit.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database


def _eventually(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_one_instance_at_a_time_holds_the_lease_and_hands_it_over(new_url: Callable[[], str]) -> None:
    url = new_url()
    first, second = filled(url), SqlAuditStore(url)  # two engines, as two processes have
    a, b = CheckpointLease(first.writer), CheckpointLease(second.writer)
    try:
        assert a.held() and not b.held()
        assert a.held() and not b.held()  # asking again neither stacks nor loses it
        a.release()
        assert b.held() and not a.held()  # and a released lease is never taken back
    finally:
        for done in (a.release, b.release, first.dispose, second.dispose):
            done()


def test_the_lease_ends_with_a_holder_killed_by_sigkill(new_url: Callable[[], str]) -> None:
    url = new_url()
    store, other = filled(url), SqlAuditStore(url)
    standby = CheckpointLease(other.writer)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not standby.held()
        os.kill(holder.pid, signal.SIGKILL)  # no release, no goodbye to the server
        holder.wait(30)
        assert _eventually(standby.held), "the lease outlived its holder"
    finally:
        if holder.poll() is None:
            holder.kill()
        if holder.stdout is not None:
            holder.stdout.close()
        standby.release()
        store.dispose()
        other.dispose()


def test_a_postgresql_holder_whose_session_is_dropped_loses_the_lease(postgres_url: str) -> None:
    store, other = filled(postgres_url), SqlAuditStore(postgres_url)
    a, b = CheckpointLease(store.writer), CheckpointLease(other.writer)
    admin = create_engine(postgres_url)
    try:
        assert a.held() and not b.held()
        with admin.begin() as conn:  # as a server restart or a network cut would drop it
            dropped = conn.execute(
                text(TERMINATE_HOLDER), {"k": LEASE_OBJID, "high": CHECKPOINT_LOCK_KEY >> 32}
            ).all()
        assert dropped == [(True,)]
        assert _eventually(b.held)
        assert not a.held()  # it notices, reconnects, and finds the lease taken
    finally:
        for done in (a.release, b.release, store.dispose, other.dispose, admin.dispose):
            done()


def test_the_publisher_anchors_what_other_instances_appended(new_url: Callable[[], str]) -> None:
    url = new_url()
    store = filled(url)  # appended by an instance that is not the publisher
    publisher = AuditService(SqlAuditStore(url), checkpoint_topic=CHECKPOINTS)
    appender = AuditService(store, checkpoint_topic=CHECKPOINTS)
    try:
        made = publisher.make_checkpoint()
        assert made is not None and made.payload.chain_length == 23
        assert publisher.make_checkpoint() is None  # nothing new
        echo = captured([made], topic=CHECKPOINTS)  # the checkpoint comes back through Kafka
        appender.capture(echo)
        assert publisher.make_checkpoint() is None  # only checkpoints arrived since
        appender.capture(captured(lineage_flow("p-later"), topic="flow"))
        later = publisher.make_checkpoint()
        assert later is not None and later.payload.chain_length == 29
    finally:
        publisher.store.dispose()
        store.dispose()


class Published:
    def __init__(self) -> None:
        self.events: list[Event[Any]] = []

    async def publish(self, event: Event[Any], topic: str | None = None) -> None:
        self.events.append(event)


def test_only_the_lease_holder_publishes_until_it_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    filled(url).dispose()
    settings = AuditSettings(state_dir=tmp_path, checkpoint_topic=CHECKPOINTS)
    outs = [Published(), Published()]
    instances = [
        Checkpointer(AuditService(open_store(url), checkpoint_topic=CHECKPOINTS), out, settings)
        for out in outs
    ]

    async def scenario() -> None:
        first, second = instances
        second.audit.capture(captured(lineage_flow("p-standby"), topic="standby"))  # it appends too
        assert await first.publish() is not None and await second.publish() is None
        assert second.audit.appended_since_checkpoint == 0  # its count does not nudge it at every batch
        assert (first.publishing, second.publishing) == (True, False)
        assert await second.publish(force=True) is not None  # an operator's request is served anyway
        await first.stop()  # releases the lease
        second.audit.capture(captured(lineage_flow("p-after"), topic="flow"))
        assert await second.publish() is not None and second.publishing

    asyncio.run(scenario())
    assert [len(out.events) for out in outs] == [1, 2]
    for checkpointer in instances:
        checkpointer.lease.release()
        checkpointer.audit.store.dispose()


def test_a_released_lease_is_free_at_once_every_time(new_url: Callable[[], str]) -> None:
    """A stopping holder's release frees the lease before it returns: on PostgreSQL, closing the
    session alone left the lock to the server's backend for a moment, and a standby asking right
    after found it taken (a clean-clone run failed the handover above on it)."""
    url = new_url()
    first, second = filled(url), SqlAuditStore(url)
    try:
        for _ in range(30):
            a, b = CheckpointLease(first.writer), CheckpointLease(second.writer)
            assert a.held()
            a.release()
            assert b.held()
            b.release()
    finally:
        first.dispose()
        second.dispose()
