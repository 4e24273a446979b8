"""The whole stack as `mlops up` starts it, in a state folder and on ports of its own, with the means
to SIGKILL one of its processes (a service or the broker) and start it again the way `mlops up` does
(`infra.supervisor.Supervisor.start_service`, `LocalKafka.start`). Loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from infra import bus_access
from infra.processes import pid_alive, wait_for_exit
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import Supervisor, probe_service, service_port

KAFKA = "kafka"
# Settings of the calling process that must not reach the stack's processes: the stack has its own.
_FOREIGN = ("KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "MLOPS_FEAST_REPO", "MLOPS_STATE_DIR")


class StackError(RuntimeError):
    """The stack did not start, or a process could not be restarted."""


def stack_env(state_dir: Path, jars_dir: Path, kafka_port: int, first_service_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN and not k.startswith("MLOPS_")}
    env.update({
        "MLOPS_STATE_DIR": str(state_dir), "MLOPS_JARS_DIR": str(jars_dir),
        "MLOPS_KAFKA_PORT": str(kafka_port), "MLOPS_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "MLOPS_KAFKA_HOST": "127.0.0.1", "MLOPS_FIRST_SERVICE_PORT": str(first_service_port),
        "MLOPS_SERVICE_START_TIMEOUT_S": "300", "MLOPS_KAFKA_START_TIMEOUT_S": "180",
        "MLFLOW_DISABLE_TELEMETRY": "true", "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    })  # fmt: skip
    bus_access.remember_stack(state_dir, f"127.0.0.1:{kafka_port}")  # its bus is locked down
    return env


class ChaosSupervisor(Supervisor):
    """`mlops up`'s supervisor, but services get the stack's environment, not this process's."""

    def __init__(self, settings: InfraSettings, env: dict[str, str]) -> None:
        super().__init__(settings)
        self.env = env

    def service_env(self, name: str, api_keys_file: Path) -> dict[str, str]:
        own = super().service_env(name, api_keys_file)
        prefix = name.upper()
        principal = tuple(key for key in bus_access.settings_env("", "") if key in own)
        nice = tuple(key for key in own if key.endswith("_CPU_NICE"))  # as `mlops up` runs them
        specific = ("KAFKA_BOOTSTRAP_SERVERS", "MLOPS_API_KEYS_FILE", "MLOPS_STATE_DIR", "PYTHONUNBUFFERED",
                    f"{prefix}_HTTP_HOST", f"{prefix}_HTTP_PORT", *principal, *nice)  # fmt: skip
        return {**self.env, **{key: own[key] for key in specific}}


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.settings = InfraSettings(
            state_dir=Path(env["MLOPS_STATE_DIR"]), jars_dir=Path(env["MLOPS_JARS_DIR"]),
            kafka_bootstrap_servers=None, kafka_host="127.0.0.1", kafka_port=int(env["MLOPS_KAFKA_PORT"]),
            kafka_controller_port=int(env["MLOPS_KAFKA_CONTROLLER_PORT"]),
            first_service_port=int(env["MLOPS_FIRST_SERVICE_PORT"]), kafka_start_timeout_s=180,
        )  # fmt: skip
        self.supervisor = ChaosSupervisor(self.settings, env)
        self.services: list[str] = []

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_servers

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def up(self, timeout_s: float = 420) -> float:
        """`mlops up` (all services); returns the seconds it took."""
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "infra.cli", "up"], cwd=REPO_ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"mlops up failed ({result.returncode}): {result.stderr[-3000:]}\n{self.logs()}")
        self.services = [c.name for c in self.supervisor.load().values() if c.kind == "service"]
        return time.monotonic() - started

    def down(self) -> None:
        """`mlops down`, in this process: it reaps the services this process restarted (its children)."""
        components = self.supervisor.load()
        for component in sorted(components.values(), key=lambda c: c.kind == KAFKA):
            with contextlib.suppress(OSError):
                self.supervisor.stop(component)
        self.supervisor.state_file.unlink(missing_ok=True)

    # -- faults ------------------------------------------------------------------------------------
    def kill(self, target: str) -> bool:
        """SIGKILL the target (a service's whole process group, or the broker). True if it was alive."""
        if target == KAFKA:
            pid = self.supervisor.kafka.pid()
            if pid is None:
                return False
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 30)
            return True
        component = self.supervisor.load().get(target)
        if component is None or not component.pid or not pid_alive(component.pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, signal.SIGKILL)
        wait_for_exit(component.pid, 30)
        return True

    def restart(self, target: str) -> None:
        """Start the target again as `mlops up` does; for a service, return without waiting for /ready."""
        components = self.supervisor.load()
        if target == KAFKA:
            kafka = self.supervisor.start_kafka()
            kafka.started_by_us = True
            components[KAFKA] = kafka
        else:
            keys = self.settings.secrets_dir / "api-keys.hashed.json"
            components[target] = self.supervisor.start_service(target, keys)
        self.supervisor.save(components)

    def dead(self) -> list[str]:
        """Targets whose process is gone (or a zombie), whoever ended it."""
        components = self.supervisor.load()
        gone = [n for n in self.services if not (components[n].pid and pid_alive(components[n].pid or 0))]
        for name in gone:  # a child of ours that exited stays a zombie until reaped
            with contextlib.suppress(ChildProcessError):
                os.waitpid(components[name].pid or 0, os.WNOHANG)
        return gone + ([] if self.supervisor.kafka.is_running() else [KAFKA])

    def last_error(self, name: str) -> str:
        """The last ERROR message a service logged (why it exited, usually)."""
        log = self.settings.logs_dir / f"{name}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("ERROR", "CRITICAL") and entry.get("logger") != "asyncio":
                return str(entry.get("msg", ""))[:200]
        return ""

    def not_ready(self) -> list[str]:
        components = self.supervisor.load()
        return [n for n in self.services if probe_service(components[n].url) != "ready"]

    # -- access ------------------------------------------------------------------------------------
    def client(self, service: str, role: str) -> httpx.Client:
        keys = json.loads((self.settings.secrets_dir / "api-keys.json").read_text())
        return httpx.Client(base_url=f"http://127.0.0.1:{service_port(self.settings, service)}",
                            headers={"X-API-Key": keys[f"dev-{role}"]["key"]}, timeout=120)  # fmt: skip

    def mlops(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "infra.cli", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip

    def logs(self, tail: int = 2500) -> str:
        paths = [
            *sorted(self.settings.logs_dir.glob("*.log")),
            self.settings.kafka_dir / "logs" / "server.log",
        ]
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in paths if p.exists()
        )
