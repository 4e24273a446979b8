"""Which consumer group bench/rebalance_time.py watches and which instance it kills: the service's
shared group and instance 1 for a service whose instances share the work; for one that runs as an
active instance and standbys (`infra.supervisor.STANDS_BY`: drift), the group of its streams
subscription, with one member, and whichever instance holds the active lease."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from typing import Any

import httpx
import psutil

from bench.platform_stack import Stack
from infra.settings import REPO_ROOT
from infra.supervisor import STANDS_BY


def service_group(service: str) -> str:
    """The consumer group the service's instances share: its settings' `consumer_group` (servicekit's
    default is the service's name). A service whose every process makes up a group of its own (serving
    reads promotions as `serving-<instance id>`) has no shared group, hence nothing to rebalance."""
    from servicekit.settings import ServiceSettings

    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        c for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, ServiceSettings) and c.service_name == service
    ]  # fmt: skip
    if not classes:
        raise SystemExit(f"services/{service}/settings.py has no settings class; pass --group")
    first, second = classes[0]().consumer_group, classes[0]().consumer_group
    if first != second:
        raise SystemExit(
            f"{service}: each instance reads in a consumer group of its own ({first}, {second}, ...): "
            "there is no shared group to rebalance; pass --group to watch another"
        )
    return str(first)


def instance_pid(stack: Stack, name: str) -> int:
    """Instance `name`'s pid as `mlops status --json` gives it, checked to be that service's process."""
    pid = status_rows(stack)[name]["pid"]
    service = name.partition("-")[0]
    if not pid or f"services.{service}" not in " ".join(psutil.Process(int(pid)).cmdline()):
        raise RuntimeError(f"{name}: pid {pid} is not a {service} process")
    return int(pid)


def group_members(service: str, instances: int) -> int:
    """Members the watched group has when steady: one for an active-standby service, else each."""
    return 1 if service in STANDS_BY else instances


def default_group(service: str) -> str:
    """The group a service's instances share (an active-standby service's streams have one too: drift's
    reads records, predictions and labels)."""
    return service_group(service)


def status_rows(stack: Stack) -> dict[str, dict[str, Any]]:
    command = [sys.executable, "-m", "infra.cli", "status", "--json"]
    status = subprocess.run(command, cwd=REPO_ROOT, env=stack.env(), capture_output=True, text=True)
    return {row["name"]: row for row in json.loads(status.stdout)["components"]}


def victim(stack: Stack, service: str, instances: int) -> str:
    """The instance a round kills: instance 1, or the one whose `/ready` says it is active."""
    if service not in STANDS_BY:
        return service
    rows = status_rows(stack)
    for name in [service, *(f"{service}-{i}" for i in range(2, instances + 1))]:
        try:
            if httpx.get(f"{rows[name]['url']}/ready", timeout=5).json().get("role") == "active":
                return name
        except (httpx.HTTPError, KeyError):
            continue
    raise RuntimeError(f"no {service} instance says it is active")
