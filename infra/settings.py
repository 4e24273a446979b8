"""Settings of the local infrastructure (the `mlops` CLI and the broker it runs).

Platform-wide names (`KAFKA_BOOTSTRAP_SERVERS`) are read without a prefix, because every service
and the CLI must agree on them; everything else here uses the `MLOPS_` prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


# Kafka's JVMs compile with C1 only. With the default tiered compilation, C2's compiler threads took
# about half of the broker's CPU in the platform benchmark, minutes after a start: 0.2 of a core at
# 1,000 records/s, and more at each change of load, as it compiled again. C1's code served this broker's
# small requests for about the same CPU (docs/benchmarks.md, "Kafka's JIT compiler"). A broker with
# cores to spare and a steady load may take C2 back: MLOPS_KAFKA_JVM_OPTIONS="".
DEFAULT_KAFKA_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


class InfraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", populate_by_name=True)

    state_dir: Path = Field(
        REPO_ROOT / ".local",
        description="Git-ignored folder for Kafka jars and data, service logs, pids and dev secrets.",
    )
    jars_dir: Path = Field(
        REPO_ROOT / ".local" / "kafka-jars",
        description="Cache of the Apache Kafka jars fetched from Maven Central (shared by all state dirs).",
    )
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"),
        description="An existing Kafka cluster (host:port,...). When set, no local broker is started.",
    )
    kafka_host: str = Field("127.0.0.1", description="Address the local broker listens on.")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Client port of the local broker.")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    profile: Literal["local", "cluster"] = Field(
        "local",
        description="`local`: one Kafka node, replication 1. `cluster`: three KRaft nodes on ports"
        " MLOPS_KAFKA_PORT, +10 and +20 (controllers one above each), replication 3, min.insync.replicas 2.",
    )
    instances: int | None = Field(
        None,
        ge=1,
        le=4,
        description="Instances of each service that scales out (ingest, serving). Default: 2 in the cluster"
        " profile, else 1.",
    )
    kafka_security: Literal["scram", "off"] = Field(
        "scram",
        description="The local broker's bus: `scram` (each service its own SCRAM principal, ACLs from"
        " contracts/access.py; nothing else gets in) or `off` (plaintext, anyone who reaches the port).",
    )
    kafka_heap: str = Field("768m", description="JVM heap (-Xmx and -Xms) of the local broker.")
    kafka_jvm_options: str = Field(
        DEFAULT_KAFKA_JVM_OPTIONS,
        max_length=2000,
        pattern=r"^\s*(-\S+\s*)*$",
        description="More options of the local brokers' JVMs, space-separated, each starting with '-'"
        " (after the heap and the collector, so they may override them). The default compiles with C1"
        ' only; "" takes the JVM\'s tiered C1 + C2 back.',
    )
    kafka_record_partitions: int = Field(
        3, ge=1, description="Partitions of the record topics (records.*, predictions, labels, features)."
    )
    kafka_other_partitions: int = Field(1, ge=1, description="Partitions of the low-volume topics.")
    stream_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU niceness of the services that work the streams (every one but serving): on"
        " shared cores serving's requests come first (servicekit/priority.py). 0 with"
        " MLOPS_TRAILING_NICE=0: all run alike. A service's own <PREFIX>_CPU_NICE wins.",
    )
    trailing_nice: int = Field(
        15,
        ge=0,
        le=19,
        description="CPU niceness of the services that trail the stream (audit, drift, explain, training,"
        " annotation): on shared cores ingest and features, which bring records online, come before"
        " them. Never below MLOPS_STREAM_NICE. A service's own <PREFIX>_CPU_NICE wins.",
    )
    kafka_start_timeout_s: float = Field(60.0, gt=0, description="How long to wait for the broker.")
    service_start_timeout_s: float = Field(90.0, gt=0, description="How long to wait for a service.")
    services: str | None = Field(
        None, description="Comma-separated subset of services for `mlops up` (default: all that exist)."
    )
    first_service_port: int = Field(
        8101, ge=1024, le=65000, description="HTTP port of the first service; others follow in order."
    )
    model_name: str = Field(
        "credit-risk",
        validation_alias=AliasChoices("MLOPS_MODEL_NAME"),
        description="Registered model `mlops model ...` acts on (the services' MLOPS_MODEL_NAME).",
    )
    prometheus_binary: str = Field(
        "prometheus", description="Prometheus server for `mlops up --with-prometheus` (Debian: prometheus)."
    )
    prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Port of that Prometheus server (it listens on 127.0.0.1 only)."
    )
    prometheus_scrape_interval_s: float = Field(
        15.0, ge=0.5, le=3600, description="How often that Prometheus scrapes each service's /metrics."
    )
    label_studio_port: int = Field(
        8200, ge=1, le=65535, description="Port of `mlops up --with-label-studio` (on 127.0.0.1 only)."
    )
    label_studio_venv: Path = Field(
        Path(".local/venvs/label-studio"),
        description="Venv of Label Studio (scripts/install-label-studio.sh); relative to the repository.",
    )
    postgres_port: int = Field(
        5433, ge=1, le=65535, description="Cluster profile: port of its PostgreSQL (audit, MLflow backend)."
    )
    mlflow_port: int = Field(
        5000, ge=1, le=65535, description="Cluster profile: port of its MLflow tracking server (loopback)."
    )
    redis_port: int = Field(
        6380, ge=1, le=65535, description="Port of the cluster profile's Redis, the online store (loopback)."
    )

    @property
    def jvm_options(self) -> tuple[str, ...]:
        return tuple(self.kafka_jvm_options.split())

    @property
    def local_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def service_instances(self) -> int:
        return self.instances or (2 if self.profile == "cluster" else 1)

    @property
    def server_stores(self) -> bool:
        """The cluster profile keeps state in servers (PostgreSQL, an MLflow tracking server, Redis),
        the local one in files (SQLite)."""
        return self.profile == "cluster"

    @property
    def kafka_nodes(self) -> int:
        return 3 if self.profile == "cluster" else 1

    @property
    def kafka_replication(self) -> int:
        return min(3, self.kafka_nodes)

    @property
    def bootstrap_servers(self) -> str:
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        # The cluster's nodes serve clients every 10 ports (infra/kafka_cluster.py's PORT_STEP).
        return ",".join(f"{self.kafka_host}:{self.kafka_port + 10 * i}" for i in range(self.kafka_nodes))

    @property
    def kafka_dir(self) -> Path:
        # Each profile keeps its own broker data: switching profiles never mixes the two.
        return self.state_dir / ("kafka-cluster" if self.profile == "cluster" else "kafka")

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"


def stack_settings(*, running_first: bool = False, **overrides: object) -> InfraSettings:
    """The settings of the stack `mlops` acts on: a profile named on the command line or in
    MLOPS_PROFILE, else the one `mlops up` last started in this state folder (so `mlops status` and
    `mlops down` find a cluster without being told), else `local`. With `running_first` (status,
    down) the profile of the stack that runs wins over MLOPS_PROFILE: it is what is there to stop."""
    settings = InfraSettings(**overrides)  # type: ignore[arg-type]
    if "profile" in overrides or ("MLOPS_PROFILE" in os.environ and not running_first):
        return settings
    remembered = settings.run_dir / "profile"
    if remembered.exists() and remembered.read_text().strip() in ("local", "cluster"):
        return settings.model_copy(update={"profile": remembered.read_text().strip()})
    return settings
