"""The whole stack as `mlops up` starts it, for the platform benchmark: start and stop it in a state
folder and on ports of its own, in either profile (`local`: one broker, SQLite; `cluster`: three
brokers, PostgreSQL, an MLflow tracking server, Redis) with N instances of the services that scale out,
and read each component's CPU time and memory from /proc. Lag comes from `infra/lag.py`."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.chaos_stack import stack_env
from infra import bus_access
from infra.kafka_jars import JIT_THREADS
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, Supervisor


@dataclass
class Stack:
    state: Path
    kafka_port: int
    first_service_port: int
    profile: str = "local"
    instances: int = 1
    postgres_port: int = 41_432
    mlflow_port: int = 41_500
    redis_port: int = 41_380
    stream_nice: int | None = None  # MLOPS_STREAM_NICE of the stack (None: the platform's default)
    settings_env: dict[str, str] = field(default_factory=dict)  # more of the stack's MLOPS_* settings

    def settings(self) -> InfraSettings:
        """The settings `mlops up` runs this stack with: built here, not from this process's MLOPS_*,
        so the supervisor's state file is read with the right profile (its components, its nodes)."""
        return InfraSettings(
            state_dir=self.state, jars_dir=InfraSettings().jars_dir, kafka_bootstrap_servers=None,
            kafka_host="127.0.0.1", kafka_port=self.kafka_port, kafka_controller_port=self.kafka_port + 1,
            first_service_port=self.first_service_port, profile=self.profile,
            instances=self.instances, postgres_port=self.postgres_port, mlflow_port=self.mlflow_port,
            redis_port=self.redis_port,
        )  # fmt: skip

    @property
    def bootstrap(self) -> str:
        """Every node of the stack's bus (three in the cluster profile)."""
        return self.settings().bootstrap_servers

    def env(self) -> dict[str, str]:
        env = stack_env(self.state, InfraSettings().jars_dir, self.kafka_port, self.first_service_port)
        env.update({
            "MLOPS_PROFILE": self.profile, "MLOPS_INSTANCES": str(self.instances),
            "MLOPS_POSTGRES_PORT": str(self.postgres_port), "MLOPS_MLFLOW_PORT": str(self.mlflow_port),
            "MLOPS_REDIS_PORT": str(self.redis_port),
        })  # fmt: skip
        if self.stream_nice is not None:
            env["MLOPS_STREAM_NICE"] = str(self.stream_nice)
        env.update(self.settings_env)
        # The cluster's bootstrap names three nodes: its super user must be found for that string too.
        bus_access.remember_stack(self.state, self.bootstrap)
        return env

    def mlops(self, *args: str, check: bool = True) -> None:
        command = [sys.executable, "-m", "infra.cli", *args]
        subprocess.run(command, cwd=REPO_ROOT, env=self.env(), check=check, stdout=sys.stderr)

    def up(self) -> None:
        if self.profile == "cluster":
            # PostgreSQL runs as the OS user `postgres` (root may not run it), with root's group (the
            # supervisor sets the uid only): it must enter the state folder, which tempfile makes 0700.
            self.state.chmod(0o711)  # enter, not list (as tests/support_postgres.py)
        self.mlops("up")

    def down(self) -> None:
        self.mlops("down", check=False)

    def pids(self) -> dict[str, int]:
        """Each component's pid, as the supervisor recorded it (brokers, stores and every instance)."""
        return {name: c.pid for name, c in Supervisor(self.settings()).load().items() if c.pid}


# The platform-wide settings' prefix and each service's own (SERVING_OUTBOX_WINDOW_MS, ...).
SETTING_PREFIXES = ("MLOPS_", *(f"{name.upper()}_" for name in SERVICE_ORDER))


SEED_LIMIT = 2**31


def seed_arg(text: str) -> int:
    """An argparse type: a seed the record generator takes (0 to 2**31 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 0 to {SEED_LIMIT - 1}")
    return value


def fresh_seed() -> int:
    return secrets.randbelow(SEED_LIMIT)


def setting_arg(text: str) -> tuple[str, str]:
    """An argparse type: `MLOPS_NAME=VALUE` or `<SERVICE>_NAME=VALUE`, one of the stack's settings
    (docs/operations.md)."""
    key, sep, value = text.partition("=")
    prefixed = any(key.startswith(prefix) and len(key) > len(prefix) for prefix in SETTING_PREFIXES)
    if not sep or not prefixed or not key.replace("_", "").isalnum() or not key.isupper():
        raise argparse.ArgumentTypeError(f"MLOPS_NAME=VALUE or SERVICE_NAME=VALUE expected, not {text!r}")
    return key, value


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each component, its child processes included."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            total = 0.0
            for p in _tree(pid):
                times = p.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            out[name] = total
        except psutil.Error:
            out[name] = float("nan")
    return out


def jit_seconds(pids: dict[str, int]) -> dict[tuple[str, int], float]:
    """CPU seconds of each JIT compiler thread of the JVMs among `pids`, by (component, thread id).
    HotSpot starts and ends compiler threads as its queue needs, so a thread gone between two readings
    takes its seconds with it: `jit_ms` undercounts, never overcounts."""
    out: dict[tuple[str, int], float] = {}
    for name, pid in pids.items():
        try:
            for process in _tree(pid):
                for thread in process.threads():
                    comm = Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text().strip()
                    if comm.startswith(JIT_THREADS):
                        out[(name, thread.id)] = thread.user_time + thread.system_time
        except (psutil.Error, OSError):
            continue
    return out


def jit_ms(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float], per: int
) -> dict[str, float]:
    """Milliseconds of JIT compilation per `per` (records) of each component that compiled."""
    out: dict[str, float] = {}
    for (name, tid), seconds in after.items():
        out[name] = out.get(name, 0.0) + max(0.0, seconds - before.get((name, tid), 0.0))
    return {name: round(seconds * 1000 / per, 3) for name, seconds in out.items()}


async def settle(
    pids: dict[str, int],
    below_cores: float = 0.3,
    window_s: float = 3.0,
    timeout_s: float = 180.0,
    read: Callable[[dict[str, int]], dict[str, float]] | None = None,
) -> float:
    """Wait until the whole stack uses less than `below_cores` of CPU over a `window_s` window (what a
    promotion sets off, the global explanation and the drift report, runs for tens of seconds), or
    `timeout_s`; the seconds waited."""
    read = read or cpu_seconds
    started = time.monotonic()
    before = read(pids)
    while time.monotonic() - started < timeout_s:
        await asyncio.sleep(window_s)
        after = read(pids)
        used = sum(after[k] - before[k] for k in before if k in after) / window_s
        if used < below_cores:
            break
        before = after
    return round(time.monotonic() - started, 1)


def rss_mib(pids: dict[str, int]) -> dict[str, float]:
    """Resident memory of each component, children included (as `mlops status` counts it)."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            out[name] = sum(p.memory_info().rss for p in _tree(pid)) / 2**20
        except psutil.Error:
            out[name] = 0.0
    return out


class MemorySampler:
    """Every component's RSS once per `every_s` while a phase runs; `summary()` gives each one's median
    and peak MiB and the same for the whole profile (the sum at each sample)."""

    def __init__(self, pids: dict[str, int], every_s: float = 1.0) -> None:
        self.pids, self.every_s = pids, every_s
        self.samples: list[dict[str, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append(await asyncio.to_thread(rss_mib, self.pids))
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, object]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.summary()

    def summary(self) -> dict[str, object]:
        if not self.samples:
            return {"samples": 0}
        per = {
            name: {
                "median": round(statistics.median(s[name] for s in self.samples), 1),
                "peak": round(max(s[name] for s in self.samples), 1),
            }
            for name in self.pids
        }
        totals = [sum(s.values()) for s in self.samples]
        return {
            "samples": len(self.samples), "per_component_mib": per,
            "total_median_mib": round(statistics.median(totals), 1), "total_peak_mib": round(max(totals), 1),
        }  # fmt: skip
