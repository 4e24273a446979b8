"""How long a process's threads waited for a CPU: the second field of Linux's
`/proc/<pid>/task/<tid>/schedstat` (nanoseconds spent runnable but not running), summed over threads.

A request that is slow because its server waited for a core and one that is slow because the server
was busy with it look the same from the client. This tells them apart: the load generator samples the
run-queue wait of serving and of itself every 100 ms, and each second of the run gets how many
milliseconds of it they spent waiting (bench/serving_loadgen.py `--watch-pid`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from pathlib import Path


def waited_ns(pid: int) -> int | None:
    """Run-queue wait of every live thread of `pid`, in ns; None when the process is gone or the kernel
    keeps no schedstat. A thread that ends between two samples takes its wait with it, so a sample
    can go down: deltas below zero count as zero."""
    total, found = 0, False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
            found = True
        except (OSError, IndexError, ValueError):  # the thread ended, or no schedstat
            continue
    return total if found else None


class RunQueueSampler:
    """Samples the run-queue wait of named processes every `every_s`, and gives per-second deltas in
    ms, keyed by the second since `origin` (a `time.perf_counter()` value)."""

    def __init__(self, pids: dict[str, int], every_s: float = 0.1) -> None:
        self.pids, self.every_s = pids, every_s
        self.samples: list[tuple[float, dict[str, int | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.samples.append((time.perf_counter(), {name: waited_ns(pid) for name, pid in self.pids.items()}))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        if self.pids:  # nothing to watch: no task waking ten times a second on a loaded machine
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    def per_second(self, origin: float) -> dict[str, dict[int, float]]:
        """{name: {second: ms waited in it}}; a delta between two samples goes to the second of the
        later one (samples are `every_s` apart, later when the sampling process itself waits, so a
        wait near a second's end may be placed in the next one)."""
        found: dict[str, defaultdict[int, float]] = {name: defaultdict(float) for name in self.pids}
        for (_, before), (at, after) in zip(self.samples, self.samples[1:], strict=False):
            for name in self.pids:
                was, now = before.get(name), after.get(name)
                if was is not None and now is not None and at >= origin:
                    found[name][int(at - origin)] += max(now - was, 0) / 1e6
        return {name: dict(seconds) for name, seconds in found.items()}
