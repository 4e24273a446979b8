"""Start, stop and inspect the platform's processes: the local broker and one process per service.

What `up` started is written to `<state>/run/components.json`; `down` stops exactly those, and
checks each pid's command line first, because pids are reused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from infra import bus_access
from infra.kafka_cluster import LocalKafkaCluster
from infra.kafka_local import LocalKafka
from infra.label_studio import LocalLabelStudio
from infra.mlflow_server import LocalMlflowServer
from infra.monitoring import LocalPrometheus
from infra.postgres_local import LocalPostgres
from infra.processes import http_ready, pid_alive, port_open, process_matches, wait_for_exit
from infra.redis_local import LocalRedis
from infra.settings import REPO_ROOT, InfraSettings
from infra.stores import store_env

# Canonical order: a service's default port is its place here, so ports never depend on which exist.
SERVICE_ORDER = ("ingest", "features", "training", "serving", "drift", "explain", "audit", "annotation")
# Started only with the component they need (`mlops up --with-label-studio`), or when named in
# MLOPS_SERVICES: without Label Studio the annotation service would only queue tasks nobody sees.
OPTIONAL_SERVICES = {"annotation": "label-studio"}
CORE_SERVICES = tuple(name for name in SERVICE_ORDER if name not in OPTIONAL_SERVICES)
# Services that run as several instances in the cluster profile (docs/operations.md, "How each service
# scales"): ingest (one consumer group; its ledger is keyed by entity, and entities are partitioned by
# key), features (one group over records.clean, keyed by entity; the online store is Redis, keyed by
# entity; the offline store is a directory of Parquet parts each append adds to), serving (stateless;
# each replica has its own group for promotions, so each swaps), audit (one group; the database
# serializes appends and skips what another instance appended; one instance at a time holds the lease
# to publish checkpoints), training (one group for requests; a run claim in the state both share runs
# each request once, and another instance takes a run over when its claimer dies), drift (as one
# active instance and a standby: its detectors judge the whole stream, so one consumes; the other
# takes the active lease and the saved state over when it dies) and explain (one group over
# prediction.made; the store of predictions both answer from is keyed by prediction id).
SCALES_OUT = ("ingest", "features", "training", "serving", "drift", "explain", "audit")
STANDS_BY = ("drift",)  # of those, the ones whose second instance is a standby (servicekit/standby.py)
# CPU priority on shared cores (servicekit/priority.py), three tiers: serving's requests first; then
# the path a record takes to its features online (one of the platform's latency promises); then the
# services that trail the stream (audit, drift, explain, training, annotation), whose lag costs no
# promise and is caught up when the load drops.
ANSWERS_FIRST = ("serving",)
FRESH_PATH = ("ingest", "features")
INSTANCE_PORT_OFFSET = 50  # instance 2 of the service on port P listens on P + 50


@dataclass
class Component:
    name: str
    # "kafka" | "kafka-node" | "service" | "prometheus" | "label-studio" | "postgres" | "mlflow" | "redis"
    kind: str
    url: str
    pid: int | None = None
    log: str | None = None
    started_by_us: bool = False


def existing_services(root: Path = REPO_ROOT) -> list[str]:
    return [name for name in SERVICE_ORDER if (root / "services" / name / "__main__.py").exists()]


def service_port(settings: InfraSettings, name: str) -> int:
    """A service's port, or an instance's: `ingest-2` listens INSTANCE_PORT_OFFSET above `ingest`."""
    base, _, instance = name.partition("-")
    extra = INSTANCE_PORT_OFFSET * (int(instance) - 1) if instance else 0
    return settings.first_service_port + SERVICE_ORDER.index(base) + extra


def service_of(name: str) -> str:
    """The service an instance belongs to (`ingest-2` -> `ingest`)."""
    return name.partition("-")[0]


def with_instances(settings: InfraSettings, services: list[str]) -> list[str]:
    """The processes to run: each service, and instances 2.. of those that scale out."""
    count = settings.service_instances
    return [
        instance
        for name in services
        for instance in [name, *(f"{name}-{i}" for i in range(2, count + 1) if name in SCALES_OUT)]
    ]


def selected_services(settings: InfraSettings, optional: tuple[str, ...] = ()) -> list[str]:
    """The services `mlops up` starts: MLOPS_SERVICES if set, else every service except the optional
    ones whose component (`optional`, e.g. "label-studio") is not started with them."""
    available = existing_services()
    if settings.services is None:
        return [s for s in available if OPTIONAL_SERVICES.get(s, "") in ("", *optional)]
    wanted = [s.strip() for s in settings.services.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise SystemExit(f"unknown service(s) {unknown}; available: {available}")
    return wanted


class Supervisor:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.kafka: LocalKafka | LocalKafkaCluster = (
            LocalKafka.from_settings(settings)
            if settings.kafka_nodes == 1
            else LocalKafkaCluster.from_settings(settings)
        )
        self.state_file = settings.run_dir / "components.json"

    # -- state ---------------------------------------------------------------------------------
    def load(self) -> dict[str, Component]:
        if not self.state_file.exists():
            return {}
        return {c["name"]: Component(**c) for c in json.loads(self.state_file.read_text())}

    def save(self, components: dict[str, Component]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps([asdict(c) for c in components.values()], indent=2) + "\n")

    def service_env(self, name: str, api_keys_file: Path) -> dict[str, str]:
        service = service_of(name)
        prefix = service.upper()
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "MLOPS_API_KEYS_FILE": str(api_keys_file),
            "MLOPS_STATE_DIR": str(self.settings.state_dir),
            f"{prefix}_HTTP_HOST": "127.0.0.1",
            f"{prefix}_HTTP_PORT": str(service_port(self.settings, name)),
            f"{prefix}_CPU_NICE": os.environ.get(f"{prefix}_CPU_NICE", str(self.cpu_nice(service))),
            "ANNOTATION_LABEL_STUDIO_URL": f"http://127.0.0.1:{self.settings.label_studio_port}",
            "PYTHONUNBUFFERED": "1",
            # Each service talks to a locked-down bus as its own principal (contracts/access.py).
            # (A serving replica's consumer group for promotions is its own by default, a random
            # SERVING_INSTANCE_ID per process, so every replica swaps.)
            **bus_access.principal_env(self.settings, service),
            # The cluster profile's state servers (PostgreSQL, the MLflow tracking server, Redis).
            **store_env(self.settings, service),
        }

    def cpu_nice(self, service: str) -> int:
        """Serving answers requests; ingest and features bring records online and yield to it; the rest
        trail the stream and yield to both (never less nice than the stream: MLOPS_TRAILING_NICE below
        MLOPS_STREAM_NICE puts them with it)."""
        if service in ANSWERS_FIRST:
            return 0
        if service in FRESH_PATH:
            return self.settings.stream_nice
        return max(self.settings.stream_nice, self.settings.trailing_nice)

    # -- kafka ---------------------------------------------------------------------------------
    def kafka_component(self) -> Component:
        if not self.settings.local_kafka:
            return Component("kafka", "kafka", f"kafka://{self.settings.bootstrap_servers}")
        return Component(
            "kafka",
            "kafka",
            f"kafka://{self.kafka.bootstrap_servers}",
            self.kafka.pid(),
            str(self.kafka.logs_dir / "server.log"),
        )

    def start_kafka(self) -> Component:
        component = self.kafka_component()
        if self.settings.local_kafka:
            component.started_by_us = self.kafka.start(self.settings.kafka_start_timeout_s)
            component.pid = self.kafka.pid()
        return component

    def node_components(self) -> list[Component]:
        """The cluster's nodes after the first, one row each (`mlops status`); the "kafka" component
        (node 1) stands for the cluster when it is stopped."""
        if not isinstance(self.kafka, LocalKafkaCluster) or not self.settings.local_kafka:
            return []
        return [
            Component(
                f"kafka-{n.node_id}",
                "kafka-node",
                f"kafka://{n.bootstrap_servers}",
                n.pid(),
                str(n.logs_dir / "server.log"),
                started_by_us=True,
            )
            for n in self.kafka.members[1:]
        ]

    # -- services ------------------------------------------------------------------------------
    def start_service(self, name: str, api_keys_file: Path) -> Component:
        url = f"http://127.0.0.1:{service_port(self.settings, name)}"
        running = self.load().get(name)
        if running and running.pid and process_matches(running.pid, f"services.{service_of(name)}"):
            return running
        port = service_port(self.settings, name)
        if port_open("127.0.0.1", port):  # else the readiness probe would be answered by a stranger
            raise SystemExit(
                f"port {port} of {name} is taken by another process; set MLOPS_FIRST_SERVICE_PORT"
            )
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.settings.logs_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service_of(name)}"],
                cwd=REPO_ROOT,
                env=self.service_env(name, api_keys_file),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return Component(name, "service", url, process.pid, str(log_path), started_by_us=True)

    def wait_healthy(self, components: list[Component], timeout_s: float) -> list[str]:
        """Wait until every service answers /ready; return the names that did not."""
        deadline = time.monotonic() + timeout_s
        pending = {c.name: c for c in components if c.kind == "service"}
        while pending and time.monotonic() < deadline:
            for name, component in list(pending.items()):
                if component.pid and not pid_alive(component.pid):
                    raise SystemExit(f"{name} exited during start-up; see {component.log}")
                if probe_service(component.url) == "ready":
                    del pending[name]
            time.sleep(0.3)
        return sorted(pending)

    def stop(self, component: Component, timeout_s: float = 20.0) -> bool:
        if not component.started_by_us or not component.pid:
            return False
        if component.kind == "kafka":
            return self.kafka.stop()
        if component.kind == "kafka-node":  # stopped with its cluster (the "kafka" component)
            return not pid_alive(component.pid)
        if component.kind == "postgres":
            return LocalPostgres(self.settings).stop()
        markers = {
            "prometheus": LocalPrometheus(self.settings).marker,
            "label-studio": LocalLabelStudio(self.settings).marker,
            "mlflow": LocalMlflowServer(self.settings).marker,
            "redis": LocalRedis(self.settings).marker,
        }
        marker = markers.get(component.kind, f"services.{service_of(component.name)}")
        if not process_matches(component.pid, marker):
            return False
        os.killpg(component.pid, signal.SIGTERM)
        if not wait_for_exit(component.pid, timeout_s):
            os.killpg(component.pid, signal.SIGKILL)
        return True


MLFLOW_USERS = {"training", "serving", "explain", "drift", "annotation"}


def prepare_mlflow(settings: InfraSettings, services: list[str]) -> None:
    """Create the local MLflow database once, before the services that share it start: MLflow's
    SQLite schema creation is not safe when two processes run it at the same time (the loser dies
    with "table ... already exists"). A configured MLflow server needs nothing here."""
    if settings.server_stores:
        return  # the tracking server migrated its own database when it started
    uri = (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(settings.state_dir / 'mlflow' / 'mlflow.db').resolve()}"
    )
    if not (MLFLOW_USERS & set(services)) or not uri.startswith("sqlite:"):
        return
    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    code = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments(max_results=1)"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code, uri], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"could not initialise the MLflow store {uri}: {result.stderr[-2000:]}")


def probe_service(url: str) -> str:
    return http_ready(url, "/ready")
