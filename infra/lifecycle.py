"""`mlops up` and `mlops down`: start the stack (Kafka, its topics, the development keys, Label Studio
and Prometheus when asked, the services) and stop exactly what `up` started."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from rich.console import Console

from infra import bus_access
from infra.label_studio import LocalLabelStudio, start_label_studio
from infra.monitoring import LocalPrometheus, ops_key
from infra.postgres_local import server_bin_dir
from infra.redis_local import LocalRedis
from infra.settings import InfraSettings
from infra.stores import launching, start_stores
from infra.supervisor import (
    Component,
    Supervisor,
    prepare_mlflow,
    process_matches,
    selected_services,
    service_port,
    with_instances,
)

console = Console(stderr=True)
DEV_KEY_HOLDERS = ("producer", "client", "ops", "auditor", "admin")
WEBHOOK_KEY_HOLDER = "label-studio-webhook"
STOP_ORDER = {"mlflow": 1, "postgres": 2, "redis": 2, "kafka": 3, "kafka-node": 4}  # what `down` stops last


def dev_api_keys(settings: InfraSettings) -> Path:
    """The development API keys, and the secret that signs browser links (read by the services
    from <state_dir>/secrets, created once)."""
    from servicekit.auth import Role, write_dev_keys
    from servicekit.signed_links import write_dev_link_secret

    holders = [(f"dev-{r}", Role(r)) for r in DEV_KEY_HOLDERS]
    # Label Studio's webhook calls the annotation service with this key; its role opens that route only.
    holders.append((WEBHOOK_KEY_HOLDER, Role.WEBHOOK))
    _, hashed = write_dev_keys(settings.secrets_dir, holders)
    write_dev_link_secret(settings.secrets_dir)
    return hashed


def create_topics(settings: InfraSettings) -> list[str]:
    from infra.topics import ensure_topics, platform_topics

    plans = platform_topics(
        settings.kafka_record_partitions, settings.kafka_other_partitions, settings.kafka_replication
    )
    return ensure_topics(settings.bootstrap_servers, plans)


def cmd_up(settings: InfraSettings, args: argparse.Namespace) -> int:
    with launching():  # each process it starts gets its own stores' settings, and no other's
        return _up(settings, args)


def _up(settings: InfraSettings, args: argparse.Namespace) -> int:
    supervisor = Supervisor(settings)
    components = supervisor.load()
    if getattr(args, "with_prometheus", False):
        LocalPrometheus(settings).binary()  # a missing binary is reported before anything starts
    if getattr(args, "with_label_studio", False):
        LocalLabelStudio(settings).binary()
    if settings.server_stores:
        LocalRedis(settings).binary()  # a missing redis-server is reported before anything starts
        server_bin_dir()  # ...and so are missing PostgreSQL binaries
    started = time.monotonic()
    with console.status("starting Kafka..."):
        kafka = supervisor.start_kafka()
    started_now = kafka.started_by_us
    components["kafka"] = _keep_ownership(components.get("kafka"), kafka)
    components.update({node.name: node for node in supervisor.node_components()})
    supervisor.save(components)
    (settings.run_dir / "profile").write_text(settings.profile + "\n")  # for later `status` and `down`
    if bus_access.secured(settings):
        bus_access.write_kcat_configs(settings.secrets_dir)  # the README's `kcat -F <file>` lines
    console.print(
        f"[green]kafka[/] {kafka.url} ready in {time.monotonic() - started:.1f}s"
        + ("" if started_now else " (already running)")
    )
    created = create_topics(settings)
    console.print(f"topics: {len(created)} created" if created else "topics: all present")
    if getattr(args, "with_label_studio", False):
        components["label-studio"] = start_label_studio(settings, components, console)
        supervisor.save(components)
    if settings.server_stores:

        def keep(component: Component) -> None:
            components[component.name] = component
            supervisor.save(components)

        start_stores(settings, components, console, keep)
    if args.no_services:
        return 0
    keys = dev_api_keys(settings)
    names = selected_services(
        settings, ("label-studio",) if getattr(args, "with_label_studio", False) else ()
    )
    with console.status("preparing the local MLflow store..."):
        prepare_mlflow(settings, names)
    names = with_instances(settings, names)
    for name in names:
        components[name] = supervisor.start_service(name, keys)
        supervisor.save(components)  # each at once: a later refusal must not orphan it from `down`
    with console.status(f"waiting for {', '.join(names) or 'no services'}..."):
        late = supervisor.wait_healthy([components[n] for n in names], settings.service_start_timeout_s)
    if late:
        console.print(f"[red]not ready after {settings.service_start_timeout_s:.0f}s:[/] {', '.join(late)}")
        return 1
    console.print(
        f"[green]up[/] in {time.monotonic() - started:.1f}s: kafka + {len(names)} service(s); "
        f"API keys for local use in {settings.secrets_dir / 'api-keys.json'}"
    )
    if getattr(args, "with_prometheus", False):
        components["prometheus"] = start_prometheus(settings, components)
        supervisor.save(components)
    return 0


def start_prometheus(settings: InfraSettings, components: dict[str, Component]) -> Component:
    """Render the config for every service the stack runs and start Prometheus, or, when ours is
    already running, have it reload the config (SIGHUP)."""
    prometheus = LocalPrometheus(settings)
    ports = {c.name: service_port(settings, c.name) for c in components.values() if c.kind == "service"}
    prometheus.write_config(ports, ops_key(settings.secrets_dir / "api-keys.json"))
    running = components.get("prometheus")
    if running and running.pid and process_matches(running.pid, prometheus.marker):
        os.kill(running.pid, signal.SIGHUP)
        console.print(f"[green]prometheus[/] {running.url} reloaded: {len(ports)} target(s)")
        return running
    with console.status("starting Prometheus..."):
        pid = prometheus.start()
    console.print(f"[green]prometheus[/] {prometheus.url} scraping {len(ports)} service(s)")
    return Component("prometheus", "prometheus", prometheus.url, pid, str(prometheus.log_file), True)


def _keep_ownership(previous: Component | None, current: Component) -> Component:
    # A second `up` finds Kafka running: it stays ours if the first `up` started it. Its pid may have
    # changed (a cluster node restarted after a crash): `current.pid` comes from our own pid file, and
    # is only set when that process really is our broker.
    if previous is not None and previous.started_by_us and current.pid is not None:
        current.started_by_us = True
    return current


def cmd_down(settings: InfraSettings, args: argparse.Namespace) -> int:
    supervisor = Supervisor(settings)
    components = supervisor.load()
    # Services first, so they can still flush to Kafka and write their stores while those are up.
    for component in sorted(components.values(), key=lambda c: STOP_ORDER.get(c.kind, 0)):
        stopped = supervisor.stop(component)
        console.print(f"{component.name}: {'stopped' if stopped else 'left alone (not started by mlops up)'}")
    supervisor.state_file.unlink(missing_ok=True)
    (settings.run_dir / "profile").unlink(missing_ok=True)
    return 0
