"""Active and standby: one instance of a service consumes at a time, the others wait to take over.

For a service whose work cannot be split by partition (drift's detectors judge the whole stream,
and two instances would each judge part of it and alarm on less evidence). Every instance answers
HTTP and connects to Kafka, but only the holder of the lease starts its subscribers and background
tasks, after its `on_active` hooks (e.g. loading the state the last holder saved). The lease is an
exclusive `flock` of a file in the state folder the instances share (one machine): the kernel
releases it when its holder dies, SIGKILL included, and a standby that polls takes it within
`poll_s`. Kafka then gives the group's partitions to the new holder (once the dead consumer's
session times out), which resumes from the committed offsets.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prometheus_client import Gauge

log = logging.getLogger(__name__)

ACTIVE = Gauge("mlops_service_active", "1 while this instance holds its service's active lease", ["service"])

Role = Literal["starting", "standby", "active", "failed"]  # standby: another instance holds the lease


class FileLease:
    """An exclusive, non-blocking `flock` held by an open descriptor until `release` (or death)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._descriptor is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                return False
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
            self._descriptor = descriptor
            return True

    def release(self) -> None:
        with self._lock:
            if self._descriptor is not None:
                os.close(self._descriptor)  # closing the descriptor releases its flock
                self._descriptor = None


@dataclass
class Standby:
    service: str
    lease: FileLease
    on_active: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    poll_s: float = 1.0
    role: Role = "starting"

    async def wait_until_active(self) -> None:
        """Poll the lease until this instance holds it; then run the `on_active` hooks."""
        ACTIVE.labels(self.service).set(0)
        announced = False
        while not await asyncio.to_thread(self.lease.try_acquire):
            if not announced:
                log.info("another %s instance is active; this one stands by", self.service)
                announced, self.role = True, "standby"
            await asyncio.sleep(self.poll_s)
        for hook in self.on_active:
            await hook()
        self.role = "active"
        ACTIVE.labels(self.service).set(1)
        log.info("this %s instance is active now (it holds %s)", self.service, self.lease.path.name)

    def release(self) -> None:
        self.lease.release()
        ACTIVE.labels(self.service).set(0)
