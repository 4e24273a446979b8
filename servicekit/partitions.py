"""What a service's subscriptions know about their partitions: which are assigned, whether their
starting offsets are resolved, and each one's lag (for `mlops_consumer_lag`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from servicekit.metrics import CONSUMER_LAG


class PartitionsView:
    """Mixed into `Subscriptions`, which provides `registered`, `service` and `_lag_labels`."""

    registered: list[Any]
    service: str
    _lag_labels: set[tuple[str, str, str, str]]

    def assignments(self) -> set[tuple[str, int]]:
        """Partitions currently assigned to this service's consumers (empty until a group settles)."""
        assigned: set[tuple[str, int]] = set()
        for subscription in self.registered:
            consumer = getattr(subscription.subscriber, "consumer", None)
            if consumer is not None:
                assigned |= {(tp.topic, tp.partition) for tp in consumer.assignment()}
        return assigned

    def all_assigned(self) -> bool:
        """True once every subscription holds partitions."""
        consumers = [getattr(s.subscriber, "consumer", None) for s in self.registered]
        return all(c is not None and c.assignment() for c in consumers)

    async def ready_for_new_messages(self, timeout_s: float = 30.0) -> None:
        """Wait until every subscription holds partitions AND knows its starting offsets. A group that
        starts at "latest" resolves "latest" lazily; a message published before that resolution would
        be skipped, so observers that must see what they publish next call this first."""
        deadline = time.monotonic() + timeout_s
        while not self.all_assigned():
            if time.monotonic() > deadline:
                raise TimeoutError("subscriptions got no partitions in time")
            await asyncio.sleep(0.05)
        for subscription in self.registered:
            consumer = subscription.subscriber.consumer
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolves the reset policy now

    async def record_lag(self, timeout_s: float = 1.0) -> None:
        """Set `mlops_consumer_lag` for every partition assigned here, from what the consumers already
        know (the high watermark comes with each fetch response; the position is local once fetching
        started): no request to the broker. Partitions no longer assigned lose their series."""
        current: set[tuple[str, str, str, str]] = set()
        for subscription in self.registered:
            consumer = getattr(subscription.subscriber, "consumer", None)
            if consumer is None or not hasattr(consumer, "highwater"):
                continue  # not started, or an in-memory test broker
            for tp in list(consumer.assignment()):
                try:
                    highwater = consumer.highwater(tp)
                    if highwater is None:  # nothing fetched from it yet
                        continue
                    position = await asyncio.wait_for(consumer.position(tp), timeout_s)
                except Exception:  # revoked meanwhile, or the position is being reset: skip it this time
                    continue
                labels = (self.service, subscription.group_id, tp.topic, str(tp.partition))
                CONSUMER_LAG.labels(*labels).set(max(highwater - position, 0))
                current.add(labels)
        for labels in self._lag_labels - current:
            CONSUMER_LAG.remove(*labels)
        self._lag_labels = current
