"""One local Apache Kafka node (broker + KRaft controller) run from Maven Central jars on Java 17.

Lifecycle: `ensure_jars` (Maven, once) -> `format` (KRaft storage, once per state dir) -> `start`
(idempotent: a running broker is left alone) -> `stop` (SIGTERM for a controlled shutdown, so the
log is flushed and data survives; SIGKILL only if it hangs).
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra import bus_access
from infra.kafka_jars import KafkaInfraError, ensure_jars
from infra.processes import port_open, wait_for_exit
from infra.settings import REPO_ROOT, InfraSettings

log = logging.getLogger(__name__)

LOG4J_CONFIG = REPO_ROOT / "infra" / "kafka" / "log4j2.properties"
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
    """A single-node KRaft cluster whose config, data, logs and pid live under `home`."""

    home: Path
    jars_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    # Set: the bus is locked down (SASL/SCRAM, ACLs), with the principals' passwords in this folder.
    secrets_dir: Path | None = None

    def __post_init__(self) -> None:
        # The broker is recognised by its config path on its command line: keep paths absolute so a
        # relative home names the same broker from any working directory.
        object.__setattr__(self, "home", self.home.resolve())
        object.__setattr__(self, "jars_dir", self.jars_dir.resolve())

    @classmethod
    def from_settings(cls, settings: InfraSettings) -> LocalKafka:
        return cls(
            home=settings.kafka_dir,
            jars_dir=settings.jars_dir,
            host=settings.kafka_host,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            heap=settings.kafka_heap,
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
    def secured_marker(self) -> Path:
        return self.home / "bus-secured"

    def security_properties(self) -> list[str]:
        if self.secrets_dir is None:
            return [
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        return bus_access.broker_properties(self.secrets_dir)

    def server_properties(self) -> str:
        # Single node: every internal topic must have replication factor 1 or it never gets created.
        listener = self.listener
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                f"listeners={listener}://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners={listener}://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                *self.security_properties(),
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
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
        java_home = os.environ.get("JAVA_HOME")
        java = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
        if not java:
            raise KafkaInfraError("Java 17 (java) is needed to run Apache Kafka")
        return str(java)

    def _classpath(self) -> str:
        return f"{self.jars_dir}/*"

    def format_storage(self) -> None:
        """Format KRaft storage once; the cluster id is kept so later starts reuse the same data. A
        locked-down bus gets its super user here: SCRAM credentials live in the metadata log."""
        if (self.data_dir / "meta.properties").exists():
            if self.secrets_dir is not None and not self.secured_marker.exists():
                raise KafkaInfraError(
                    f"the broker's data in {self.data_dir} predates the locked-down bus and has no"
                    " principals: remove that folder (its data is lost), or set MLOPS_KAFKA_SECURITY=off"
                )
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        cmd = [
            self._java(),
            "-cp",
            self._classpath(),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id_file.read_text().strip(),
            "-c",
            str(self.config_file),
            "--ignore-formatted",
            *(bus_access.format_scram_arguments(self.secrets_dir) if self.secrets_dir else []),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # The output of a failed format may echo its arguments: never show the password.
            output = f"{result.stdout}{result.stderr}"
            if self.secrets_dir is not None:
                output = output.replace(bus_access.passwords(self.secrets_dir)[bus_access.SUPER_USER], "***")
            raise KafkaInfraError(f"formatting KRaft storage failed: {output}")
        if self.secrets_dir is not None:
            self.secured_marker.write_text("SCRAM-SHA-512 super user formatted in\n")

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start the broker unless it runs already; wait until it answers. Returns True if started here."""
        if self.is_running():
            self.remember_super_user()
            self.wait_until_ready(timeout_s)
            self.apply_access()
            return False
        if self.answers():
            raise KafkaInfraError(
                f"port {self.port} is taken by another process; "
                "set MLOPS_KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that cluster"
            )
        ensure_jars(self.jars_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.unlink(missing_ok=True)  # it holds the broker's own passwords: 0600
        self.config_file.touch(mode=0o600)
        self.config_file.write_text(self.server_properties())
        self.remember_super_user()
        self.format_storage()
        cmd = [
            self._java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            self._classpath(),
            MAIN_CLASS,
            str(self.config_file),
        ]
        with open(self.logs_dir / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(str(process.pid))
        self.wait_until_ready(timeout_s, process)
        self.apply_access()
        return True

    def apply_access(self) -> None:
        """The principals and ACLs of contracts/access.py, on a locked-down broker (when they changed)."""
        if self.secrets_dir is None:
            return
        summary = bus_access.apply_plan(
            self.home, self.secrets_dir, self.bootstrap_servers, self._java(), self.jars_dir
        )
        if summary:
            log.info("bus access plan applied: %s", summary)

    def remember_super_user(self) -> None:
        """Let this process's ops tooling (`kafka_options`) reach a locked-down broker it started."""
        if self.secrets_dir is not None:
            admin = bus_access.passwords(self.secrets_dir)[bus_access.SUPER_USER]
            bus_access.remember(
                self.bootstrap_servers, bus_access.client_security(bus_access.SUPER_USER, admin)
            )

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
