"""The cluster profile's state servers: PostgreSQL (the audit store, MLflow's backend), the MLflow
tracking server on it, Redis (Feast's online store), and what a service or an `mlops` command needs
in its environment to reach them. The local profile has none of this: its state lives in SQLite files
in the state folder.

Each service gets only what it uses: the audit service the audit database's URL (as its owner, with
the SELECT-and-INSERT role its sessions switch to); the services that open Feast's online store its
Redis; every service the tracking server's URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from infra.mlflow_server import LocalMlflowServer, MlflowServerError
from infra.postgres_local import AUDIT_APP, AUDIT_OWNER, LocalPostgres, PostgresError
from infra.processes import http_ready
from infra.redis_local import LocalRedis, RedisError, feast_online_store, start_redis
from infra.settings import InfraSettings

if TYPE_CHECKING:
    from rich.console import Console

    from infra.supervisor import Component

StoreError = (PostgresError, MlflowServerError, RedisError)
FEAST_ONLINE_USERS = ("features", "serving", "training")  # the services whose settings open it


def store_env(settings: InfraSettings, service: str | None = None) -> dict[str, str]:
    """The variables that point `service` (None: the `mlops` tooling, which may act for any service)
    at the profile's state servers; {} in the local profile."""
    if not settings.server_stores:
        return {}
    env = {"MLFLOW_TRACKING_URI": LocalMlflowServer(settings).url}
    if service in (None, "audit"):
        env["AUDIT_DATABASE_URL"] = LocalPostgres(settings).url(AUDIT_OWNER, "audit")
        env["AUDIT_DATABASE_APP_ROLE"] = AUDIT_APP
    if service is None or service in FEAST_ONLINE_USERS:
        env["MLOPS_FEAST_ONLINE_STORE"] = json.dumps(feast_online_store(settings))
    return env


@contextmanager
def stores_environment(settings: InfraSettings) -> Iterator[None]:
    """For one `mlops` command: the state servers' variables in this process's environment (the
    settings it builds and the tools it runs inherit them), taken out afterwards. All or nothing: when
    any is set already, the caller chose its own stores."""
    wanted = store_env(settings)
    added = {} if any(name in os.environ for name in wanted) else wanted
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def start_stores(settings: InfraSettings, running: dict[str, Component], console: Console) -> list[Component]:
    """Redis, PostgreSQL, then the MLflow tracking server on it; what already runs is kept."""
    from infra.supervisor import Component, process_matches

    redis = start_redis(settings, running, console)
    postgres = LocalPostgres(settings)
    with console.status("starting PostgreSQL..."):
        started = postgres.start()
    previous = running.get("postgres")
    ours = started or bool(previous and previous.started_by_us)
    console.print(f"[green]postgres[/] {postgres.address} ready" + ("" if started else " (already running)"))
    components = [
        redis,
        Component("postgres", "postgres", postgres.address, postgres.pid(), str(postgres.log_file), ours),
    ]
    server = LocalMlflowServer(settings)
    previous = running.get("mlflow")
    if previous and previous.pid and process_matches(previous.pid, server.marker):
        return [*components, previous]
    with console.status("starting the MLflow tracking server..."):
        pid = server.start()
    console.print(f"[green]mlflow[/] {server.url} ready (artifacts in {server.artifacts})")
    return [*components, Component("mlflow", "mlflow", server.url, pid, str(server.log_file), True)]


def probe_store(settings: InfraSettings, component: Component) -> str:
    if component.kind == "redis":
        return LocalRedis(settings).health()  # it needs the password
    if component.kind == "mlflow":
        return http_ready(component.url, "/health")
    from infra.processes import port_open

    port = int(component.url.rsplit(":", 1)[1])
    return "ready" if port_open("127.0.0.1", port) else "down"
