"""One local Apache Kafka node (broker + KRaft controller) run from Maven Central jars on Java 17: a
cluster of its own by default, or one node of a KRaft cluster (infra/kafka_cluster.py).

Lifecycle: `ensure_jars` (Maven, once) -> `format` (KRaft storage, once per state dir) -> `start`
(idempotent: a running broker is left alone; `launch` spawns it without waiting, for a quorum whose
nodes only answer once a majority runs) -> `stop` (SIGTERM for a controlled shutdown, so the log is
flushed and data survives; SIGKILL only if it hangs).
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra import bus_access, bus_plan
from infra.kafka_classes import ensure_class_archive
from infra.kafka_jars import DEFAULT_JVM_OPTIONS, KafkaInfraError, ensure_jars, java, java_command
from infra.processes import port_open, wait_for_exit
from infra.settings import InfraSettings

log = logging.getLogger(__name__)

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def new_cluster_id() -> str:
    """A Kafka cluster id: URL-safe base64 of a UUID. Like Kafka's own Uuid.randomUuid, never one that
    starts with '-', which the storage tool's argument parser would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class LocalKafka:
    """A KRaft node whose config, data, logs and pid live under `home`: a single-node cluster by
    default; with `voters` (controller.quorum.voters, `id@host:port,...`) one node of a larger one,
    whose nodes share one `cluster_id_file` and whose internal topics get `replication` replicas."""

    home: Path
    jars_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS
    # Set: the bus is locked down (SASL/SCRAM, ACLs), with the principals' passwords in this folder.
    secrets_dir: Path | None = None
    node_id: int = 1
    voters: str | None = None  # None: this node is the whole quorum
    replication: int = 1
    cluster_id_file: Path | None = None  # None: home/cluster.id, made at the first format
    access_stamp: Path | None = None  # the access plan's stamp (None: home/access.sha256)
    class_archive: bool = True  # archive the jars' classes first if not yet done (infra/kafka_classes.py)

    def __post_init__(self) -> None:
        # The broker is recognised by its config path on its command line: keep paths absolute so a
        # relative home names the same broker from any working directory.
        object.__setattr__(self, "home", self.home.resolve())
        object.__setattr__(self, "jars_dir", self.jars_dir.resolve())
        if self.cluster_id_file is not None:
            object.__setattr__(self, "cluster_id_file", self.cluster_id_file.resolve())

    @classmethod
    def from_settings(cls, settings: InfraSettings) -> LocalKafka:
        return cls(
            home=settings.kafka_dir,
            jars_dir=settings.jars_dir,
            host=settings.kafka_host,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            heap=settings.kafka_heap,
            jvm_options=settings.jvm_options,
            secrets_dir=settings.secrets_dir if bus_access.secured(settings) else None,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def listener(self) -> str:
        return bus_access.PROTOCOL if self.secrets_dir else "PLAINTEXT"

    @property
    def quorum_voters(self) -> str:
        return self.voters or f"{self.node_id}@{self.host}:{self.controller_port}"

    @property
    def plan_stamp(self) -> Path:
        return self.access_stamp or self.home / "access.sha256"

    def security_properties(self) -> list[str]:
        if self.secrets_dir is None:
            return [
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        return bus_plan.broker_properties(self.secrets_dir)

    def replication_properties(self) -> list[str]:
        """Internal topics get `replication` replicas (a single node: 1, or they never get created);
        from 3 replicas on, an acknowledged write (acks=all) is on at least 2 of them."""
        factor, min_isr = self.replication, 2 if self.replication >= 3 else 1
        cluster = [f"default.replication.factor={factor}", f"min.insync.replicas={min_isr}"]
        return [
            f"offsets.topic.replication.factor={factor}",
            "offsets.topic.num.partitions=3",
            f"transaction.state.log.replication.factor={factor}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={factor}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            *(cluster if factor > 1 else []),
        ]

    def server_properties(self) -> str:
        listener = self.listener
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.quorum_voters}",
                f"listeners={listener}://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners={listener}://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                *self.security_properties(),
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                *self.replication_properties(),
                "group.initial.rebalance.delay.ms=0",
                # Accept the 5 MB messages producers may send, so ingest can reject them with a reason.
                "message.max.bytes=8388608",
                "replica.fetch.max.bytes=8388608",
                "",
            ]
        )

    def pid(self) -> int | None:
        """The broker's pid if it is alive and really is our Kafka (pids get reused)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if MAIN_CLASS.encode() in cmdline and str(self.config_file).encode() in cmdline else None

    def _recorded_pid_alive(self) -> bool:
        try:
            os.kill(int(self.pid_file.read_text().strip()), 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        return True

    def is_running(self) -> bool:
        return self.pid() is not None

    def answers(self) -> bool:
        return port_open(self.host, self.port)

    def _java(self) -> str:
        return java()

    def format_storage(self) -> None:
        """Format KRaft storage once; the cluster id is kept so later starts reuse the same data. New
        storage has no principals or ACLs yet: the access plan's stamp goes, so the plan is applied."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.plan_stamp.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id_file = self.cluster_id_file or self.home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        cmd = java_command(
            self.jars_dir,
            self.logs_dir,
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id_file.read_text().strip(),
            "-c",
            str(self.config_file),
            "--ignore-formatted",
            options=self.jvm_options,
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaInfraError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start the broker unless it runs already; wait until it answers. Returns True if started here."""
        process = self.launch()
        self.wait_until_ready(timeout_s, process)
        self.apply_access()
        return process is not None

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Format (once) and spawn the broker without waiting for it; None if it runs already."""
        if self.is_running():
            if self.secrets_dir is not None and bus_access.PROTOCOL not in self.config_file.read_text():
                raise KafkaInfraError(
                    f"the broker running from {self.home} was started with an open bus: stop it"
                    " (`mlops down`) and start it again to lock the bus, or set MLOPS_KAFKA_SECURITY=off"
                )
            self.remember_super_user()
            return None
        if self.answers():
            raise KafkaInfraError(
                f"port {self.port} is taken by another process; "
                "set MLOPS_KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that cluster"
            )
        ensure_jars(self.jars_dir)
        if self.class_archive:
            ensure_class_archive(self.jars_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.unlink(missing_ok=True)  # it holds the broker's own passwords: 0600
        self.config_file.touch(mode=0o600)
        self.config_file.write_text(self.server_properties())
        self.remember_super_user()
        self.format_storage()
        broker = (MAIN_CLASS, str(self.config_file))  # the main class and its one argument
        cmd = java_command(self.jars_dir, self.logs_dir, *broker, heap=self.heap, options=self.jvm_options)
        with open(self.logs_dir / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(str(process.pid))
        return process

    def apply_access(self) -> None:
        """The principals and ACLs of contracts/access.py, on a locked-down broker (when they changed)."""
        if self.secrets_dir is None:
            return
        summary = bus_plan.apply_plan(
            self.plan_stamp, self.secrets_dir, self.bootstrap_servers, self._java(), self.jars_dir
        )
        if summary:
            log.info("bus access plan applied: %s", summary)

    def remember_super_user(self) -> None:
        """Let this process's ops tooling (`kafka_options`) reach a locked-down broker it started."""
        if self.secrets_dir is not None:
            bus_access.remember_super_user(self.bootstrap_servers, self.secrets_dir)

    def wait_until_ready(self, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
        from infra.topics import broker_answers  # aiokafka import kept off the CLI's fast paths

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise KafkaInfraError(
                    f"Kafka exited with {process.returncode}; see {self.logs_dir}/server.log"
                )
            if self.answers() and broker_answers(self.bootstrap_servers):
                return
            time.sleep(0.25)
        raise KafkaInfraError(f"Kafka did not answer on {self.bootstrap_servers} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Controlled shutdown. Returns True if a broker was running."""
        pid = self.pid()
        if pid is None:
            if not self._recorded_pid_alive():  # a live process we do not recognise keeps its file
                self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not wait_for_exit(pid, timeout_s):
            log.warning("Kafka (pid %s) ignored SIGTERM for %.0fs; killing it", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        return True
