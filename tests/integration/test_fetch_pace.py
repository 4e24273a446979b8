"""Fetch pacing against the real broker: a batch consumer with nothing to read asks Kafka for records
a few times a second instead of twenty, and a record that then arrives is handled within the quiet
wait, after which the consumer fetches at the busy pace again (servicekit/fetch_pace.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from contracts.events import TrainingRequested
from servicekit import fetch_pace
from servicekit.consumer import Delivery
from servicekit.subscribers import BATCH_WAIT_MS
from tests.integration.test_event_bus import kit
from tests.support import create_topic, training_request, wait_until


def count_fetches(fetcher: Any) -> list[float]:
    """The times of the fetch requests `fetcher` sends from now on (its own method, wrapped on the
    instance: its fetch loop looks it up there each time)."""
    sent: list[float] = []
    original: Callable[..., Coroutine[Any, Any, Any]] = fetcher._proc_fetch_request

    async def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(time.monotonic())
        return await original(*args, **kwargs)

    fetcher._proc_fetch_request = counted
    return sent


def per_second(times: list[float], since: float, until: float) -> float:
    return sum(since <= t < until for t in times) / (until - since)


async def test_a_quiet_consumer_fetches_a_few_times_a_second_and_still_gets_the_next_record_at_once(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    got: list[tuple[float, TrainingRequested]] = []

    @subs.on_batch(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(batch: list[Delivery[TrainingRequested]]) -> None:
        got.extend((time.monotonic(), d.event) for d in batch)

    pace = subs.registered[0].pace
    assert pace is not None
    pace.quiet_after_s = 0.5
    async with subs.broker:
        await subs.broker.start()
        fetcher = subs.registered[0].subscriber.consumer._fetcher
        await wait_until(lambda: bool(subs.assignments()), what="the partition to be assigned")
        sent = count_fetches(fetcher)
        busy_from = time.monotonic()
        await asyncio.sleep(0.5)
        busy_rate = per_second(sent, busy_from, time.monotonic())  # pacing not started yet: 50 ms
        fetch_pace.start_all([pace], quiet_wait_ms=fetch_pace.QUIET_WAIT_MS)
        await wait_until(lambda: pace.quiet, timeout_s=5, what="the consumer to go quiet")
        await asyncio.sleep(0.6)  # the fetch in flight when it went quiet still had the busy wait
        quiet_from = time.monotonic()
        await asyncio.sleep(2.0)
        quiet_rate = per_second(sent, quiet_from, time.monotonic())
        assert fetcher._fetch_max_wait_ms == fetch_pace.QUIET_WAIT_MS

        sent_at = time.monotonic()
        await subs.publisher.publish(training_request(), topic=unique_topic)
        await wait_until(lambda: len(got) == 1, timeout_s=10, what="the record sent to a quiet consumer")
        waited = got[0][0] - sent_at
        assert not pace.quiet and fetcher._fetch_max_wait_ms == BATCH_WAIT_MS
        fetch_pace.stop_all([pace])

    assert busy_rate >= 8, f"{busy_rate:.1f} fetches/s before pacing (about 20 expected at 50 ms)"
    assert quiet_rate <= 3, f"{quiet_rate:.1f} fetches/s while quiet (about 2 expected at 500 ms)"
    # One small record is far below the fetch's minimum bytes: the quiet fetch returns after its wait.
    assert waited < fetch_pace.QUIET_WAIT_MS / 1000 + 1.5, f"the record waited {waited:.2f} s"


async def test_a_service_app_paces_its_batch_consumers_from_its_setting_and_stops_at_shutdown(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    from servicekit.app import create_service_app
    from tests.support import probe_settings

    await create_topic(kafka_bootstrap, unique_topic)
    settings = probe_settings(kafka_bootstrap, quiet_fetch_wait_ms=750, fetch_wait_ms=120)
    subs = kit(kafka_bootstrap)
    broker = subs.broker  # the one its subscriptions and its publisher were made with
    handled: list[int] = []

    @subs.on_batch(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(batch: list[Delivery[TrainingRequested]]) -> None:
        handled.append(len(batch))

    @subs.on_event(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def one(event: TrainingRequested, source: object) -> None:
        return None

    batch, single = subs.registered
    assert batch.pace is not None and single.pace is None  # one-event consumers already wait 500 ms
    batch.pace.quiet_after_s = 0.3
    app = create_service_app(settings, broker, title="probe", subscriptions=subs)
    async with app.router.lifespan_context(app):
        await wait_until(lambda: batch.pace is not None and batch.pace.quiet, timeout_s=10, what="quiet")
        assert batch.subscriber.consumer._fetcher._fetch_max_wait_ms == 750
        assert single.subscriber.consumer._fetcher._fetch_max_wait_ms == 500  # untouched
        await subs.publisher.publish(training_request(), topic=unique_topic)
        await wait_until(lambda: sum(handled) == 1, timeout_s=10, what="the record")
        # Busy again, at the service's own busy wait (its fetch_wait_ms), not the kit's 50 ms.
        assert batch.subscriber.consumer._fetcher._fetch_max_wait_ms == 120
    assert batch.pace._timer is None
