"""`mlops status`: each component the stack runs, its URL, health, pid and memory (RSS with children)."""

from __future__ import annotations

import argparse
import json

import psutil
from rich.console import Console
from rich.table import Table

from infra.label_studio import probe_label_studio
from infra.monitoring import probe_prometheus
from infra.processes import pid_alive
from infra.settings import InfraSettings
from infra.stores import probe_store
from infra.supervisor import Component, Supervisor, probe_service


def component_status(supervisor: Supervisor, component: Component) -> dict[str, object]:
    if component.kind in ("kafka", "kafka-node"):
        from infra.topics import broker_answers

        bootstrap = component.url.removeprefix("kafka://")
        health = "ready" if broker_answers(bootstrap) else "down"
    elif component.kind in ("postgres", "mlflow", "redis"):
        health = (
            probe_store(supervisor.settings, component)
            if component.pid and pid_alive(component.pid)
            else "down"
        )
    elif component.kind in ("prometheus", "label-studio"):
        probe = probe_prometheus if component.kind == "prometheus" else probe_label_studio
        health = probe(component.url) if component.pid and pid_alive(component.pid) else "down"
    else:
        health = probe_service(component.url) if component.pid and pid_alive(component.pid) else "down"
    return {
        "name": component.name,
        "kind": component.kind,
        "url": component.url,
        "health": health,
        "pid": component.pid,
        "rss_mib": round(rss_bytes(component.pid) / 2**20, 1) if component.pid else None,
        "log": component.log,
    }


def rss_bytes(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def cmd_status(settings: InfraSettings, args: argparse.Namespace) -> int:
    supervisor = Supervisor(settings)
    components = supervisor.load()
    components.setdefault("kafka", supervisor.kafka_component())
    for node in supervisor.node_components():
        components.setdefault(node.name, node)
    rows = [component_status(supervisor, c) for c in components.values()]
    total = sum(r["rss_mib"] or 0 for r in rows)  # type: ignore[misc]
    if args.json:
        print(json.dumps({"components": rows, "total_rss_mib": round(total, 1)}, indent=2))
    else:
        table = Table("component", "url", "health", "pid", "RSS MiB")
        for r in rows:
            colour = "green" if r["health"] == "ready" else "red"
            table.add_row(
                str(r["name"]),
                str(r["url"]),
                f"[{colour}]{r['health']}[/]",
                str(r["pid"] or "-"),
                str(r["rss_mib"] or "-"),
            )
        table.add_row("total", "", "", "", f"{total:.1f}")
        Console().print(table)
    return 0 if all(r["health"] == "ready" for r in rows) else 1
