"""A local Apache Kafka cluster of several KRaft nodes (each one broker and controller, a `LocalKafka`)
from the same Maven jars: the cluster profile's bus, and the stage of the broker failover drills.

Layout, under one `home`: `home/cluster.id` (the id every node is formatted with), `home/node-1`,
`home/node-2`, ... (each node's config, data, logs and pid), and the access plan's stamp. Ports: node
`i` (from 1) serves clients on `port + 10*(i-1)` and the controller quorum on `port + 10*(i-1) + 1`;
with `port=29092`, node 1 is 29092/29093, node 2 29102/29103, node 3 29112/29113.

Topics get 3 replicas (fewer only on a smaller cluster) and `min.insync.replicas` 2, so an
acknowledged write (acks=all) survives the loss of any one broker. With `secrets_dir` the bus is
locked down exactly like the single node: the super user is formatted into every node's metadata
and the access plan (principals, ACLs) is applied once the whole cluster answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import bus_access, bus_plan
from infra.kafka_jars import DEFAULT_JVM_OPTIONS, KafkaInfraError, java
from infra.kafka_local import LocalKafka, new_cluster_id
from infra.processes import wait_for_exit
from infra.settings import InfraSettings

log = logging.getLogger(__name__)

PORT_STEP = 10  # node i's ports: port + PORT_STEP*(i-1) for clients, one more for its controller
DEFAULT_HEAP = "384m"  # per node: three JVMs where one used to run


@dataclass(frozen=True)
class LocalKafkaCluster:
    """`nodes` KRaft nodes (broker + controller each) on loopback, in one quorum."""

    home: Path
    jars_dir: Path
    nodes: int = 3
    host: str = "127.0.0.1"
    port: int = 29092
    heap: str = DEFAULT_HEAP
    jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS
    # Set: the bus is locked down (SASL/SCRAM, ACLs), with the principals' passwords in this folder.
    secrets_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("a cluster needs at least one node")
        object.__setattr__(self, "home", self.home.resolve())
        object.__setattr__(self, "jars_dir", self.jars_dir.resolve())

    @classmethod
    def from_settings(cls, settings: InfraSettings) -> LocalKafkaCluster:
        """The cluster profile's bus (`mlops up --profile cluster`)."""
        return cls(
            home=settings.kafka_dir,
            jars_dir=settings.jars_dir,
            nodes=settings.kafka_nodes,
            host=settings.kafka_host,
            port=settings.kafka_port,
            jvm_options=settings.jvm_options,
            secrets_dir=settings.secrets_dir if bus_access.secured(settings) else None,
        )

    # What the supervisor asks of its broker, answered by node 1 (`mlops status` lists the others).
    def pid(self) -> int | None:
        return self.node(1).pid()

    def is_running(self) -> bool:
        return any(n.is_running() for n in self.members)

    @property
    def logs_dir(self) -> Path:
        return self.node(1).logs_dir

    @property
    def replication(self) -> int:
        return min(3, self.nodes)

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.nodes + 1))

    @property
    def plan_stamp(self) -> Path:
        return self.home / "access.sha256"

    @property
    def cluster_id_file(self) -> Path:
        return self.home / "cluster.id"

    @property
    def voters(self) -> str:
        return ",".join(f"{i}@{self.host}:{self.port + PORT_STEP * (i - 1) + 1}" for i in self.node_ids)

    def node(self, node_id: int) -> LocalKafka:
        if node_id not in self.node_ids:
            raise KeyError(f"no node {node_id} in a cluster of {self.nodes}")
        client_port = self.port + PORT_STEP * (node_id - 1)
        return LocalKafka(
            home=self.home / f"node-{node_id}",
            jars_dir=self.jars_dir,
            host=self.host,
            port=client_port,
            controller_port=client_port + 1,
            heap=self.heap,
            jvm_options=self.jvm_options,
            secrets_dir=self.secrets_dir,
            node_id=node_id,
            voters=self.voters,
            replication=self.replication,
            cluster_id_file=self.cluster_id_file,
            access_stamp=self.plan_stamp,  # one plan for the cluster: any node formatted anew resets it
        )

    @property
    def members(self) -> list[LocalKafka]:
        return [self.node(i) for i in self.node_ids]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.bootstrap_servers for n in self.members)

    def start(self, timeout_s: float = 120.0) -> bool:
        """Start every node that is not running, then wait for all of them: no node answers before a
        majority of the controllers runs, so all are launched first. Returns True if any started here."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(new_cluster_id())
        self.remember_super_user()
        launched = {n.node_id: n.launch() for n in self.members}
        deadline = time.monotonic() + timeout_s
        for member in self.members:
            member.wait_until_ready(max(1.0, deadline - time.monotonic()), launched[member.node_id])
        self.apply_access()
        return any(process is not None for process in launched.values())

    def apply_access(self) -> None:
        """The access plan, once for the whole cluster (ACLs and SCRAM users live in its metadata)."""
        if self.secrets_dir is not None:
            bus_plan.apply_plan(
                self.plan_stamp, self.secrets_dir, self.bootstrap_servers, java(), self.jars_dir
            )

    def remember_super_user(self) -> None:
        """Let this process's ops tooling (`kafka_options`) reach the cluster as a whole."""
        if self.secrets_dir is not None:
            bus_access.remember_super_user(self.bootstrap_servers, self.secrets_dir)

    def stop(self, timeout_s: float = 30.0, quorum_grace_s: float = 10.0) -> bool:
        """Controlled shutdown of every node at once. A node still up once a majority has gone waits
        for a controller quorum that no longer exists (KRaft would wait minutes): after `quorum_grace_s`
        it gets SIGKILL, and its log is recovered at the next start. Returns True if any node ran."""
        running = {n.node_id: (n, pid) for n in self.members if (pid := n.pid()) is not None}
        for member in self.members:
            if member.node_id not in running:
                member.stop()  # forgets a stale pid file
        for _, pid in running.values():
            os.kill(pid, signal.SIGTERM)
        deadline, quorum_lost_at = time.monotonic() + timeout_s, None
        alive = dict(running)
        while alive:
            for node_id, (member, pid) in list(alive.items()):
                if wait_for_exit(pid, 0.1):
                    member.pid_file.unlink(missing_ok=True)
                    del alive[node_id]
            if alive and quorum_lost_at is None and len(alive) <= self.nodes // 2:
                quorum_lost_at = time.monotonic()
            now = time.monotonic()
            if alive and (now > deadline or (quorum_lost_at and now - quorum_lost_at > quorum_grace_s)):
                why = "outlived its quorum" if quorum_lost_at else f"ignored SIGTERM for {timeout_s:.0f}s"
                for node_id, (member, pid) in alive.items():
                    log.info("Kafka node %s (pid %s) %s; killing it", node_id, pid, why)
                    os.kill(pid, signal.SIGKILL)
                    wait_for_exit(pid, 5)
                    member.pid_file.unlink(missing_ok=True)
                break
            time.sleep(0.2)
        return bool(running)

    def kill(self, node_id: int) -> int:
        """SIGKILL one node, as a crash would (no controlled shutdown). Returns the pid killed."""
        member = self.node(node_id)
        pid = member.pid()
        if pid is None:
            raise KafkaInfraError(f"node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, 10)
        member.pid_file.unlink(missing_ok=True)
        return pid

    def start_node(self, node_id: int, timeout_s: float = 90.0) -> bool:
        """(Re)start one node on its existing data and wait until it answers. True if started here."""
        member = self.node(node_id)
        process: subprocess.Popen[bytes] | None = member.launch()
        member.wait_until_ready(timeout_s, process)
        return process is not None

    def pids(self) -> dict[int, int | None]:
        return {n.node_id: n.pid() for n in self.members}

    def rss_mib(self) -> float:
        """Resident memory of the running nodes' JVMs together (VmRSS from /proc), in MiB."""
        kib = 0
        for pid in (p for p in self.pids().values() if p is not None):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            kib += sum(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return kib / 1024

    def client_options(self, principal: str) -> dict[str, Any]:
        """aiokafka arguments for `principal` of a locked-down cluster (plaintext otherwise), with
        every node to bootstrap from: a service's own settings, as it would connect."""
        if self.secrets_dir is None:
            return {"bootstrap_servers": self.bootstrap_servers}
        password = bus_access.passwords(self.secrets_dir)[principal]
        return {
            "bootstrap_servers": self.bootstrap_servers,
            **bus_access.client_security(principal, password),
        }

    def partitions(self, topic: str) -> dict[int, dict[str, Any]]:
        """The topic's partitions as the cluster's metadata has them: `leader` (-1 for none),
        `replicas` and `isr` (node ids)."""
        return asyncio.run(_partitions(self.bootstrap_servers, topic))

    def leader_of(self, topic: str, partition: int) -> int | None:
        leader = int(self.partitions(topic)[partition]["leader"])
        return leader if leader >= 0 else None


UNKNOWN_TOPIC = 3
METADATA_WAIT_S = 15.0


async def _partitions(bootstrap: str, topic: str) -> dict[int, dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient  # aiokafka import kept off the CLI's fast paths

    admin = AIOKafkaAdminClient(**bus_access.kafka_options(bootstrap), request_timeout_ms=15000)
    await admin.start()
    try:
        deadline = time.monotonic() + METADATA_WAIT_S
        while True:
            [described] = await admin.describe_topics([topic])
            # 3, UNKNOWN_TOPIC_OR_PARTITION: a node that has not caught up with the controller's
            # metadata yet (a topic just created, a node just restarted) answers so for a moment.
            if described["error_code"] != UNKNOWN_TOPIC or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if described["error_code"]:
            raise KafkaInfraError(f"describing {topic} failed with Kafka error {described['error_code']}")
        return {p["partition"]: p for p in described["partitions"]}
    finally:
        await admin.close()
