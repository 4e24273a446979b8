"""Active and standby (servicekit/standby.py): of two instances on one lease, one consumes (its hooks
and tasks run) while the other answers `/ready` as a standby; the standby takes over when the active
one stops, or is killed with SIGKILL (the kernel releases a dead holder's flock)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from servicekit.app import create_service_app
from servicekit.standby import FileLease, Standby
from servicekit.tasks import BackgroundTasks
from tests.support import probe_settings, wait_until


def instance(name: str, lease: Path, seen: list[str]) -> FastAPI:
    async def on_active() -> None:
        seen.append(f"{name} loads the state")

    async def work() -> None:
        seen.append(f"{name} consumes")
        await asyncio.Event().wait()

    tasks = BackgroundTasks()
    tasks.add("work", work)
    standby = Standby("probe", FileLease(lease), on_active=[on_active], poll_s=0.05)
    return create_service_app(probe_settings("127.0.0.1:1"), None, title=name, tasks=tasks, standby=standby)


async def ready(app: FastAPI) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        answer = await client.get("/ready")
    return answer.status_code, answer.json()


async def test_one_instance_consumes_and_the_standby_takes_over_when_it_stops(tmp_path: Path) -> None:
    seen: list[str] = []
    first, second = (
        instance("first", tmp_path / "active.lease", seen),
        instance("second", tmp_path / "active.lease", seen),
    )
    running_first = first.router.lifespan_context(first)
    await running_first.__aenter__()
    await wait_until(lambda: first.state.standby.role == "active", 10, "the first to be active")
    async with second.router.lifespan_context(second):
        await wait_until(lambda: second.state.standby.role == "standby", 10, "the second to stand by")
        await asyncio.sleep(0.3)  # six polls: it stays a standby while the first holds the lease
        assert seen == ["first loads the state", "first consumes"]
        assert await ready(second) == (200, {"ready": True, "checks": {}, "role": "standby"})
        assert (await ready(first))[1]["role"] == "active"
        await running_first.__aexit__(None, None, None)  # the active instance stops
        await wait_until(lambda: second.state.standby.role == "active", 10, "the second to take over")
        await wait_until(lambda: len(seen) == 4, 10, "the second to consume")
        assert seen[2:] == ["second loads the state", "second consumes"]  # hooks before consuming


async def test_a_hook_that_fails_on_taking_over_gives_the_lease_up_and_shows_in_readiness(
    tmp_path: Path,
) -> None:
    async def broken() -> None:
        raise RuntimeError("state unreadable")

    standby = Standby("probe", FileLease(tmp_path / "active.lease"), on_active=[broken], poll_s=0.05)
    app = create_service_app(probe_settings("127.0.0.1:1"), None, title="probe", standby=standby)
    async with app.router.lifespan_context(app):
        await wait_until(lambda: standby.role == "failed", 10, "the failure to show")
        assert await ready(app) == (503, {"ready": False, "checks": {}, "role": "failed"})
        assert FileLease(tmp_path / "active.lease").try_acquire()  # free for another instance


def test_a_lease_whose_holder_is_killed_is_taken_by_the_next(tmp_path: Path) -> None:
    lease = tmp_path / "active.lease"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from servicekit.standby import "
         "FileLease; assert FileLease(Path(sys.argv[1])).try_acquire(); print('held', flush=True); "
         "time.sleep(600)", str(lease)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = FileLease(lease)
        assert not mine.try_acquire()  # held by a live process
        assert lease.read_text().strip() == str(holder.pid)  # who holds it, for a person looking
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10
        while not mine.try_acquire():
            assert time.monotonic() < deadline, "the dead holder's lease was never released"
            time.sleep(0.05)
        assert lease.read_text().strip() == str(os.getpid())
        assert FileLease(lease).try_acquire() is False  # and now this process holds it
        mine.release()
        assert FileLease(lease).try_acquire()
    finally:
        holder.kill()


class HalfStartingBroker:
    """Starts its first subscriber, then fails on the second (what a real broker.start() can do)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect(self) -> None:
        self.calls.append("connect")

    async def start(self) -> None:
        self.calls.append("first subscriber consuming")
        raise RuntimeError("second subscriber: topic authorization failed")

    async def stop(self) -> None:
        self.calls.append("stopped")

    async def ping(self, timeout: float) -> bool:
        return True


async def test_a_takeover_that_fails_half_way_stops_what_it_started_before_giving_the_lease_up(
    tmp_path: Path,
) -> None:
    broker = HalfStartingBroker()
    standby = Standby("probe", FileLease(tmp_path / "active.lease"), poll_s=0.05)
    settings = probe_settings("127.0.0.1:1")
    app = create_service_app(settings, broker, title="probe", standby=standby)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        await wait_until(lambda: standby.role == "failed", 10, "the failure to show")
        # The half-started subscriber no longer consumes, so the next active instance is alone.
        assert broker.calls == ["connect", "first subscriber consuming", "stopped"]
        assert FileLease(tmp_path / "active.lease").try_acquire()
