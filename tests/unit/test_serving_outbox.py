"""The prediction-event outbox: never blocks a request, drops and counts when full, publishes in
batches, retries a failed batch with the same event ids, flushes on close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from contracts.envelope import Event
from services.serving.adapters.outbox import EventOutbox
from tests.support import training_request, wait_until
from tests.unit.test_serving_support import Published


class Item:
    def __init__(self, *events: Event[Any], fail: bool = False) -> None:
        self._events = events
        self.fail = fail

    def events(self) -> Sequence[Event[Any]]:
        if self.fail:
            raise ValueError("cannot build")
        return self._events


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("serving_events_dropped_total", {"reason": reason}) or 0.0


async def test_offer_never_blocks_and_drops_when_full() -> None:
    published = Published()
    outbox = EventOutbox(published, maxsize=2, batch=10)
    before = dropped("queue_full")
    assert outbox.offer(Item(training_request())) and outbox.offer(Item(training_request()))
    assert not outbox.offer(Item(training_request()))
    assert dropped("queue_full") == before + 1 and outbox.depth == 2
    outbox.start()
    await outbox.close()
    assert len(published.events) == 2 and outbox.depth == 0


async def test_a_batch_that_fails_is_retried_with_the_same_events() -> None:
    published = Published()
    published.fail = 3
    outbox = EventOutbox(published, maxsize=100, batch=10, retry_max_s=0.05)
    sent = [training_request() for _ in range(3)]
    for event in sent:
        outbox.offer(Item(event))
    outbox.start()
    await wait_until(lambda: len(published.events) == 3, timeout_s=10, what="the retried batch")
    await outbox.close()
    assert sorted(e.event_id for e, _ in published.events) == sorted(e.event_id for e in sent)


async def test_one_item_that_cannot_be_built_does_not_sink_the_batch() -> None:
    published = Published()
    outbox = EventOutbox(published, maxsize=100, batch=10)
    before = dropped("build_failed")
    good = training_request()
    outbox.offer(Item(fail=True))
    outbox.offer(Item(good))
    outbox.start()
    await outbox.close()
    assert [e for e, _ in published.events] == [good]
    assert dropped("build_failed") == before + 1


async def test_events_are_published_concurrently_in_batches() -> None:
    in_flight: list[int] = []
    peak = 0

    async def slow_publish(event: Event[Any], topic: str | None = None) -> None:
        nonlocal peak
        in_flight.append(1)
        peak = max(peak, len(in_flight))
        await asyncio.sleep(0.01)
        in_flight.pop()

    outbox = EventOutbox(slow_publish, maxsize=1000, batch=50)
    for _ in range(100):
        outbox.offer(Item(training_request()))
    outbox.start()
    await outbox.close()
    assert peak == 50  # one batch in flight at a time, its events not awaited one by one


async def test_close_gives_up_after_its_timeout_and_counts_what_is_lost() -> None:
    published = Published()
    published.fail = 10**6  # Kafka never comes back
    outbox = EventOutbox(published, maxsize=10, batch=10, retry_max_s=0.01)
    outbox.offer(Item(training_request()))
    outbox.start()
    await outbox.close(timeout_s=0.2)
    assert published.events == []


async def test_the_window_gathers_predictions_into_one_batch_and_a_full_batch_ends_it_early() -> None:
    published_at: list[float] = []
    in_flight: list[int] = []
    peak = 0
    loop = asyncio.get_running_loop()

    async def publish(event: Event[Any], topic: str | None = None) -> None:
        nonlocal peak
        published_at.append(loop.time())
        in_flight.append(1)
        peak = max(peak, len(in_flight))
        await asyncio.sleep(0.05)
        in_flight.pop()

    outbox = EventOutbox(publish, maxsize=100, batch=50, window_s=0.3)
    outbox.start()
    first = loop.time()
    for _ in range(5):  # five predictions 20 ms apart, as a steady low rate sends them
        outbox.offer(Item(training_request()))
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(published_at) == 5, timeout_s=10, what="the window's batch")
    assert min(published_at) - first >= 0.29  # nothing went before the window closed ...
    assert peak == 5  # ... and then all five went as one batch

    published_at.clear()
    full = EventOutbox(publish, maxsize=100, batch=4, window_s=30)
    full.start()
    started = loop.time()
    for _ in range(4):
        full.offer(Item(training_request()))
    await wait_until(lambda: len(published_at) == 4, timeout_s=5, what="the full batch")
    assert loop.time() - started < 5  # a whole batch does not wait out a 30 s window
    await asyncio.gather(outbox.close(), full.close())


async def test_with_no_window_each_prediction_goes_at_once() -> None:
    published = Published()
    outbox = EventOutbox(published, maxsize=100, batch=50, window_s=0)
    outbox.start()
    outbox.offer(Item(training_request()))
    await wait_until(lambda: len(published.events) == 1, timeout_s=5, what="the lone prediction")
    await outbox.close()


def test_the_window_comes_from_the_environment_and_garbage_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from services.serving.settings import ServingSettings

    assert ServingSettings().outbox_window_ms == 50
    monkeypatch.setenv("SERVING_OUTBOX_WINDOW_MS", "0")
    assert ServingSettings().outbox_window_ms == 0  # as before: each event as it comes
    for garbage in ("-1", "1001", "soon", "nan"):
        monkeypatch.setenv("SERVING_OUTBOX_WINDOW_MS", garbage)
        with pytest.raises(ValidationError, match="outbox_window_ms"):
            ServingSettings()
