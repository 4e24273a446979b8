"""The whole stack as `mlops up` starts it, for the platform benchmark: start and stop it in a state
folder and on ports of its own, and read each component's CPU time from /proc. Lag comes from
`infra/lag.py`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.chaos_stack import stack_env
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import Supervisor


@dataclass
class Stack:
    state: Path
    kafka_port: int
    first_service_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def env(self) -> dict[str, str]:
        return stack_env(self.state, InfraSettings().jars_dir, self.kafka_port, self.first_service_port)

    def mlops(self, *args: str, check: bool = True) -> None:
        command = [sys.executable, "-m", "infra.cli", *args]
        subprocess.run(command, cwd=REPO_ROOT, env=self.env(), check=check, stdout=sys.stderr)

    def up(self) -> None:
        self.mlops("up")

    def down(self) -> None:
        self.mlops("down", check=False)

    def pids(self) -> dict[str, int]:
        """Each component's pid, as the supervisor recorded it."""
        settings = InfraSettings(state_dir=self.state)
        return {name: c.pid for name, c in Supervisor(settings).load().items() if c.pid}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each component, its child processes included."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            total = 0.0
            for p in [process, *process.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            out[name] = total
        except psutil.Error:
            out[name] = float("nan")
    return out
