"""What the end-to-end tests share about a whole stack started with the `mlops` CLI: its environment
(a state folder and ports of its own), an HTTP client in a role's seat, and the services' logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from infra.bus_access import remember_stack
from infra.supervisor import INSTANCE_PORT_OFFSET, SERVICE_ORDER
from tests.support import isolated_env


def stack_env(state: Path, jars_dir: Path, kafka_port: int, first_service_port: int) -> dict[str, str]:
    env = isolated_env()
    env.update({
        "MLOPS_STATE_DIR": str(state), "MLOPS_JARS_DIR": str(jars_dir), "MLOPS_KAFKA_PORT": str(kafka_port),
        "MLOPS_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "MLOPS_FIRST_SERVICE_PORT": str(first_service_port), "MLOPS_SERVICE_START_TIMEOUT_S": "240",
    })  # fmt: skip
    remember_stack(state, f"127.0.0.1:{kafka_port}")  # the tests' own clients use its super user
    return env


def api(env: dict[str, str], service: str, role: str) -> httpx.Client:
    """A client of `service` (or of one instance: `training-2`) holding the development key of `role`
    (from the stack's state folder)."""
    keys = json.loads((Path(env["MLOPS_STATE_DIR"]) / "secrets" / "api-keys.json").read_text())
    name, _, instance = service.partition("-")
    port = int(env["MLOPS_FIRST_SERVICE_PORT"]) + SERVICE_ORDER.index(name)
    port += INSTANCE_PORT_OFFSET * (int(instance) - 1) if instance else 0
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": keys[f"dev-{role}"]["key"]}, timeout=60
    )


def logs(state: Path, tail: int = 3000) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-tail:]}" for p in (state / "logs").glob("*.log"))


def wait_for(probe: Any, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    """Poll `probe` every half second (or `every_s`) until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
