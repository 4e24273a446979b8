"""The kit's background tasks and retries."""

from __future__ import annotations

import asyncio
import gc

import pytest

from servicekit.tasks import BackgroundTasks, retrying


async def test_tasks_run_until_stopped_and_a_failing_one_does_not_stop_the_others() -> None:
    ticks: list[str] = []

    async def forever() -> None:
        while True:
            ticks.append("tick")
            await asyncio.sleep(0.01)

    async def fails() -> None:
        raise RuntimeError("broken task")

    tasks = BackgroundTasks()
    tasks.add("ticker", forever)
    tasks.add("broken", fails)
    await tasks.start()
    await asyncio.sleep(0.05)
    assert tasks.running == ["ticker"] and len(ticks) >= 2
    await tasks.stop()
    stopped_at = len(ticks)
    await asyncio.sleep(0.03)
    assert len(ticks) == stopped_at and tasks.running == []


async def test_retrying_returns_once_the_call_succeeds_and_counts_retries() -> None:
    calls: list[int] = []
    retries: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("broker away")
        return "sent"

    result = await retrying(flaky, what="publish", first_wait_s=0.001, on_retry=lambda: retries.append(1))
    assert result == "sent" and len(calls) == 3 and len(retries) == 2


async def test_bounded_retrying_raises_the_last_error() -> None:
    async def never() -> None:
        raise TimeoutError("still away")

    with pytest.raises(TimeoutError, match="still away"):
        await retrying(never, what="flush", attempts=3, first_wait_s=0.001)


async def test_a_service_starting_while_the_broker_is_away_waits_for_it_then_gives_up() -> None:
    """The chaos suite's finding: a service started during a broker restart exited and stayed down."""
    from servicekit.app import create_service_app
    from servicekit.broker import make_broker
    from tests.support import probe_settings

    settings = probe_settings("127.0.0.1:1", kafka_connect_wait_s=1.5)  # nothing listens on port 1
    broker = make_broker(settings)
    attempts: list[int] = []
    connect = broker.connect

    async def counted_connect() -> object:
        attempts.append(1)
        return await connect()

    broker.connect = counted_connect  # type: ignore[method-assign]
    app = create_service_app(settings, broker, title="probe")
    with pytest.raises(Exception, match=r"(?i)bootstrap|connect"):
        async with app.router.lifespan_context(app):
            pass
    assert len(attempts) >= 3  # it kept trying for the wait it was given, instead of exiting at once


def test_services_run_on_the_standard_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop raises RuntimeError where aiokafka expects OSError, killing a consumer's coordinator."""
    import uvicorn
    from fastapi import FastAPI

    from servicekit import heap, runner
    from servicekit.runner import run_service
    from tests.support import probe_settings

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setattr(runner, "configure_logging", lambda *args: None)  # no global logging change
    # It marks the process as the service's own and times full collections: undone after the test.
    monkeypatch.setattr(heap, "_own_process", False)
    monkeypatch.setattr(heap, "_watching", False)
    monkeypatch.setattr(gc, "callbacks", [])  # the module's name only: the collector keeps its own list
    threshold = gc.get_threshold()
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options, gc=gc.get_threshold()))
    try:
        run_service(FastAPI(), probe_settings("127.0.0.1:1", gc_young_threshold=4321))
    finally:
        gc.set_threshold(*threshold)
    assert seen["loop"] == "asyncio"
    assert heap.is_own_process() and len(gc.callbacks) == 1
    assert seen["gc"] == (4321, *threshold[1:])  # set before uvicorn starts the app


async def test_what_the_start_loaded_is_moved_out_of_the_collectors_sight() -> None:
    """After its start hooks, a service's own process freezes its heap: full collections no longer walk
    the models and libraries the hooks loaded (ingest measured a third of a structured record's CPU
    there). A process hosting apps (tests) freezes nothing, or it would keep each app for good."""
    import gc

    from servicekit import heap
    from servicekit.app import create_service_app
    from tests.support import probe_settings

    loaded: list[object] = []

    async def load() -> None:
        loaded.append({"model": [object() for _ in range(1000)]})

    gc.unfreeze()
    app = create_service_app(probe_settings("127.0.0.1:1"), None, title="probe", on_startup=[load])
    async with app.router.lifespan_context(app):  # as tests host apps: nothing is frozen
        assert loaded and gc.get_freeze_count() == 0
    heap.own_process()  # as servicekit.runner.run_service says
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() >= 1000  # the hook's objects among the frozen
    finally:
        heap._own_process = False
        gc.unfreeze()
