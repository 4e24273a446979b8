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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from infra.mlflow_server import LocalMlflowServer, MlflowServerError, client_env
from infra.postgres_local import AUDIT_APP, LocalPostgres, PostgresError
from infra.postgres_roles import migrate_audit
from infra.processes import http_ready
from infra.redis_local import LocalRedis, RedisError, feast_online_store, start_redis
from infra.settings import InfraSettings

if TYPE_CHECKING:
    from rich.console import Console

    from infra.supervisor import Component

StoreError = (PostgresError, MlflowServerError, RedisError)
FEAST_ONLINE_USERS = ("features", "serving", "training")  # the services whose settings open it
_ADDED: set[str] = set()  # what stores_environment put into this process's environment


def store_env(settings: InfraSettings, service: str | None = None) -> dict[str, str]:
    """The variables that point `service` (None: the `mlops` tooling, which may act for any service)
    at the profile's state servers; {} in the local profile. The audit database is reached as
    audit_app, which can read and append to the chain and nothing else."""
    if not settings.server_stores:
        return {}
    env = {"MLFLOW_TRACKING_URI": LocalMlflowServer(settings).url, **client_env(settings)}
    if service in (None, "audit"):
        env["AUDIT_DATABASE_URL"] = LocalPostgres(settings).url(AUDIT_APP, "audit")
        env["AUDIT_DATABASE_APP_ROLE"] = AUDIT_APP
    if service is None or service in FEAST_ONLINE_USERS:
        env["MLOPS_FEAST_ONLINE_STORE"] = json.dumps(feast_online_store(settings))
    return env


@contextmanager
def stores_environment(settings: InfraSettings) -> Iterator[None]:
    """For one `mlops` command: the state servers' variables in this process's environment (the
    settings it builds and the tools it runs inherit them), taken out afterwards. A variable the
    caller set already is theirs and stays as it is."""
    added = {name: value for name, value in store_env(settings).items() if name not in os.environ}
    os.environ.update(added)
    _ADDED.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        _ADDED.difference_update(added)


@contextmanager
def launching() -> Iterator[None]:
    """While `mlops up` starts processes: what stores_environment added is out of the environment, so
    each process gets only what its own start gives it (a service its own stores, a server none)."""
    removed = {name: os.environ.pop(name) for name in list(_ADDED) if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(removed)


def start_stores(
    settings: InfraSettings,
    running: dict[str, Component],
    console: Console,
    save: Callable[[Component], None],
) -> None:
    """Redis, PostgreSQL (the audit chain migrated on it), then the MLflow tracking server on it; each
    is handed to `save` as soon as it runs, so `mlops down` knows it even if a later one fails. What
    already runs is kept."""
    from infra.supervisor import Component

    save(start_redis(settings, running, console))
    postgres = LocalPostgres(settings)
    with console.status("starting PostgreSQL..."):
        started = postgres.start()
    # Ours when it runs on our data folder (postmaster.pid names a postgres with our -D), even if no
    # earlier `up` recorded it.
    save(Component("postgres", "postgres", postgres.address, postgres.pid(), str(postgres.log_file), True))
    migrate_audit(postgres)
    console.print(f"[green]postgres[/] {postgres.address} ready" + ("" if started else " (already running)"))
    server = LocalMlflowServer(settings)
    pid = server.pid()
    if pid is None:
        with console.status("starting the MLflow tracking server..."):
            pid = server.start()
        console.print(f"[green]mlflow[/] {server.url} ready (artifacts in {server.artifacts})")
    save(Component("mlflow", "mlflow", server.url, pid, str(server.log_file), True))


def probe_store(settings: InfraSettings, component: Component) -> str:
    if component.kind == "redis":
        return LocalRedis(settings).health()  # it needs the password
    if component.kind == "mlflow":
        return http_ready(component.url, "/health")
    from infra.processes import port_open

    port = int(component.url.rsplit(":", 1)[1])
    return "ready" if port_open("127.0.0.1", port) else "down"
