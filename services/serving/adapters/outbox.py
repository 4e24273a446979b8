"""A bounded in-process queue of pending prediction events, drained by one background task.

Why: a /predict response must not wait for Kafka (acks=all plus linger costs >= 5 ms). The route
offers the event's ingredients and returns; the drainer builds the events and publishes them in
batches, concurrently, through the kit's EventPublisher. After the first event of a batch, it gathers
for `window_s` (or until a batch is full): published one at a time, each of 200 predictions a second
paid a produce request and wake-ups of its own, in serving and in Kafka.

Delivery guarantee, honestly: AT MOST ONCE. Events still queued when the process dies are lost (up to
`outbox_size`, normally the last window's predictions: up to `window_s` of traffic); a graceful
shutdown flushes the queue first. When the queue is full (Kafka down or slower than the traffic) new
events are dropped and counted (`serving_events_dropped_total{reason="queue_full"}`): predictions
keep being served. A batch that fails to publish is retried with backoff while the queue absorbs new
events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from contracts.envelope import Event
from services.serving.metrics import OUTBOX_DEPTH, OUTBOX_DROPPED, OUTBOX_PUBLISH_FAILURES

log = logging.getLogger(__name__)

Publish = Callable[[Event[Any]], Awaitable[None]]


class Pending(Protocol):
    """Something that becomes events off the request path (e.g. a prediction, plus its shadow)."""

    def events(self) -> Sequence[Event[Any]]: ...


class EventOutbox:
    def __init__(
        self, publish: Publish, *, maxsize: int, batch: int, retry_max_s: float = 5.0, window_s: float = 0.0
    ) -> None:
        self._publish = publish
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize)
        self._batch = batch
        self._window_s = window_s
        self._full = asyncio.Event()  # set by `offer` when a whole batch waits: the window ends early
        self._retry_max_s = retry_max_s
        self._task: asyncio.Task[None] | None = None

    def offer(self, item: Pending) -> bool:
        """Never blocks; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            OUTBOX_DROPPED.labels("queue_full").inc()
            return False
        if self._queue.qsize() >= self._batch - 1:
            self._full.set()
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain_forever(), name="serving-outbox")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Publish what is queued (bounded by `timeout_s`), then stop the drainer."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            OUTBOX_DROPPED.labels("shutdown").inc(self._queue.qsize())
            log.warning("shutdown: %d prediction events not published", self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _drain_forever(self) -> None:
        while True:
            items = [await self._queue.get()]
            if self._window_s > 0 and self._queue.qsize() < self._batch - 1:
                # Gather the window's predictions first: at 200 a second, published one by one, each
                # paid a produce request and a wake-up of its own, here and in Kafka.
                await self._full_or(self._window_s)
            while len(items) < self._batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            OUTBOX_DEPTH.set(self._queue.qsize())
            try:
                await self._publish_with_retry(self._events(items))
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _full_or(self, timeout_s: float) -> None:
        """Return after `timeout_s`, or sooner once a whole batch waits."""
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), timeout_s)

    def _events(self, items: list[Pending]) -> list[Event[Any]]:
        events: list[Event[Any]] = []
        for item in items:
            try:
                events.extend(item.events())
            except Exception:  # one bad item must not sink the batch
                OUTBOX_DROPPED.labels("build_failed").inc()
                log.exception("could not build a prediction event")
        return events

    async def _publish_with_retry(self, events: list[Event[Any]]) -> None:
        delay = 0.1
        pending = events
        while pending:
            results = await asyncio.gather(*(self._publish(e) for e in pending), return_exceptions=True)
            failed = [e for e, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
            if not failed:
                return
            OUTBOX_PUBLISH_FAILURES.inc()
            log.warning("%d of %d prediction events failed to publish; retrying", len(failed), len(pending))
            pending = failed
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
