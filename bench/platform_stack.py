"""The whole stack as `mlops up` starts it, for the platform benchmark: start and stop it in a state
folder and on ports of its own, read each component's CPU time from /proc, and read every consumer
group's lag from the broker (committed offsets against end offsets)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import Supervisor

# Settings of the caller's shell that would point the stack at another broker or store.
_FOREIGN = ("KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "MLOPS_FEAST_REPO")


@dataclass
class Stack:
    state: Path
    kafka_port: int
    first_service_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
        env.update({
            "MLOPS_STATE_DIR": str(self.state), "MLOPS_KAFKA_PORT": str(self.kafka_port),
            "MLOPS_KAFKA_CONTROLLER_PORT": str(self.kafka_port + 1),
            "MLOPS_FIRST_SERVICE_PORT": str(self.first_service_port), "MLOPS_SERVICE_START_TIMEOUT_S": "300",
            "MLOPS_JARS_DIR": str(InfraSettings().jars_dir), "MLFLOW_DISABLE_TELEMETRY": "true",
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        })  # fmt: skip
        return env

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


class LagReader:
    """Lag of every consumer group of the stack: end offsets minus committed offsets, summed."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.offsets.start()

    async def stop(self) -> None:
        await self.offsets.stop()
        await self.admin.close()

    async def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            for described in await self.admin.describe_topics(missing):
                self._partitions[described["topic"]] = [p["partition"] for p in described["partitions"]]
        partitions = [TopicPartition(t, p) for t in topics for p in self._partitions.get(t, [])]
        return dict(await self.offsets.end_offsets(partitions)) if partitions else {}

    async def lag_by_group(
        self,
        prefixes: tuple[str, ...],
        start_ends: dict[TopicPartition, int],
        required: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, int]:
        """Groups whose name starts with one of `prefixes` -> total lag. A partition a group has not
        committed on yet counts from `start_ends` (where the phase began); `required` (group, topic)
        pairs count even before their group has committed anything."""
        groups = {g[0] for g in await self.admin.list_consumer_groups() if str(g[0]).startswith(prefixes)}
        groups |= {group for group, _ in required}
        lags: dict[str, int] = {}
        for group in sorted(groups):
            committed = await self.admin.list_consumer_group_offsets(group)
            topics = {tp.topic for tp in committed} | {t for g, t in required if g == group}
            ends = await self.end_offsets(sorted(topics))
            lag = 0
            for tp, end in ends.items():
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else start_ends.get(tp, end)
                lag += max(end - position, 0)
            lags[group] = lag
        return lags
