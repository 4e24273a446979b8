"""Quiet consumers ask the broker for records less often than busy ones.

A batch consumer asks for at least BATCH_FETCH_MIN_BYTES and lets the broker wait BATCH_WAIT_MS for
them (servicekit/subscribers.py): fuller fetches while records flow, at most that much latency per
hop. On a topic with nothing new, though, every fetch comes back empty after BATCH_WAIT_MS, and the
consumer asks again at once: twenty round trips a second per consumer, each paid by the service and
by Kafka. The idle local stack burned about 210 ms of CPU per second, a tenth of two cores, most of it
that way (docs/benchmarks.md, "An idle stack").

A low, steady rate has the opposite cost: 200 predictions a second filled no fetch, so each consumer
of them took twenty batches a second of about ten events, each paying a fetch, an offset commit and
its handler's fixed cost (a transaction, a save). Services off a record's way to the online store
(audit, drift, explain, training) let the broker hold a busy fetch longer (`busy_wait_ms`, from
ServiceSettings.fetch_wait_ms: 250 ms unless set), for batches five times fuller.

So the wait follows the traffic. A consumer whose handler has seen no batch for `quiet_after_s` lets
the broker wait `quiet_wait_ms` per fetch; the first batch it gets back sets it to `busy_wait_ms`
again. A record arriving on a quiet topic waits at most `quiet_wait_ms` for its fetch to return (less
when the broker has BATCH_FETCH_MIN_BYTES for it first); once records flow, nothing changes.

aiokafka takes the wait once, at construction, and reads it from its fetcher each time it builds a
fetch request (`Fetcher._fetch_max_wait_ms`, aiokafka 0.14). That attribute is private, so a consumer
without it (another aiokafka, the in-memory test broker, a replay) keeps its fixed wait, and
tests/unit/test_servicekit_fetch_pace.py pins that the installed aiokafka still reads it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

QUIET_WAIT_MS = 500
QUIET_AFTER_S = 2.0


class FetchPace:
    """The fetch wait of one batch subscriber's consumer (see the module doc). Call `busy()` on each
    batch and `start()` once the subscriber runs; `stop()` when it stops."""

    def __init__(
        self,
        subscriber: Any,
        busy_wait_ms: int,
        quiet_wait_ms: int = QUIET_WAIT_MS,
        quiet_after_s: float = QUIET_AFTER_S,
    ) -> None:
        if not 0 < busy_wait_ms <= quiet_wait_ms:
            raise ValueError("the quiet wait must be at least the busy wait, and both above 0")
        self.subscriber = subscriber
        self.busy_wait_ms, self.quiet_wait_ms, self.quiet_after_s = busy_wait_ms, quiet_wait_ms, quiet_after_s
        self.quiet = False
        self._last_batch = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def _fetcher(self) -> Any:
        fetcher = getattr(getattr(self.subscriber, "consumer", None), "_fetcher", None)
        return fetcher if hasattr(fetcher, "_fetch_max_wait_ms") else None

    def _set(self, wait_ms: int) -> bool:
        fetcher = self._fetcher()
        if fetcher is None:
            return False
        fetcher._fetch_max_wait_ms = wait_ms
        return True

    def use_busy_wait(self, wait_ms: int) -> None:
        """Fetch at `wait_ms` while batches come (the service's own busy wait), from the next request."""
        self.busy_wait_ms = wait_ms
        if not self.quiet:
            self._set(wait_ms)

    def busy(self) -> None:
        """A batch arrived: fetch at the busy pace from the next request on."""
        self._last_batch = time.monotonic()
        if self.quiet:
            self.quiet = False
            self._set(self.busy_wait_ms)

    def start(self) -> None:
        self.stop()  # started again (a standby that takes over once more): one timer, not two
        self._last_batch = time.monotonic()
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.quiet_after_s, self._check)

    def _check(self) -> None:
        """Every `quiet_after_s`: quiet when no batch came since the last check. It is set again each
        time, so a consumer the subscriber rebuilt (after a reconnect) is paced too."""
        if time.monotonic() - self._last_batch >= self.quiet_after_s and self._set(self.quiet_wait_ms):
            self.quiet = True
        elif not self.quiet:
            self._set(self.busy_wait_ms)  # a rebuilt consumer starts at the wait it was built with
        self._arm()


def start_all(paces: list[FetchPace | None], quiet_wait_ms: int, busy_wait_ms: int | None = None) -> None:
    """Fetch at `busy_wait_ms` (when given) while records flow, and start pacing every batch subscriber
    at `quiet_wait_ms` when quiet (no more than its busy wait: pacing is off)."""
    for pace in paces:
        if pace is None:
            continue
        if busy_wait_ms is not None and busy_wait_ms != pace.busy_wait_ms:
            pace.use_busy_wait(busy_wait_ms)
        if quiet_wait_ms > pace.busy_wait_ms:
            pace.quiet_wait_ms = quiet_wait_ms
            pace.start()


def stop_all(paces: list[FetchPace | None]) -> None:
    for pace in paces:
        if pace is not None:
            pace.stop()
