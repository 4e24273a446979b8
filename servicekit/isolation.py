"""One bad record never takes its neighbours with it: per-record isolation of a batch handler's failures.

A batch handler that raises is split in halves at once, and each half is handled on its own, down to
single records (depth first, so what is handled is handled in the batch's order). A record that fails
alone is *poison*; every record in a half that succeeded is *handled*. Then:

- **some records were handled**: the handler and its stores work, so the failure is the poison
  records'. Each is tried alone `alone_attempts` times in all, with a short backoff, so a store that
  blinked at that very call costs no record (once three records of the batch failed every retry, the
  next ones are not retried: a burst of bad records costs calls, not seconds of backoff each); what
  still fails is returned as poison, for the caller to dead-letter alone, each with its reason, while
  its neighbours go on. A batch of one record is judged so too when the caller says (`proven`) that
  the handler went through on other records lately: on a quiet topic a bad record comes alone.
  `StoresWork` keeps that proof for the consumer, one failing batch per proof.
- **nothing went through** in the first calls (a store is down in a way the kit does not recognise as
  an outage, or every record is bad): nothing tells the records' fault from the store's, so the batch
  is retried whole with capped exponential backoff (tenacity), `attempts` times in all, then isolated
  down to single records. The caller redelivers a batch in which nothing was handled a bounded number
  of times before it gives up on it (servicekit/consumer.py).

Until 2026-12-07 every failing batch was retried whole `attempts` times *before* it was split. With the
audit's 100 attempts (an outage should stall the trail, not thin it) one poison record held its batch,
and the partition behind it, for about eight minutes of backoff; now it costs about 2*log2(n) calls of
shrinking halves plus its own retries, whatever `attempts` is. Outages the kit recognises never come
here: servicekit/outages.py waits them out, the batch whole, before any isolation.

Handlers are idempotent (the platform's rule), so handling a half again after a failed whole is
harmless.

>>> import asyncio
>>> async def handle(items: list[int]) -> None:
...     if 13 in items:
...         raise ValueError("thirteen")
>>> result = asyncio.run(handle_isolating(list(range(20)), handle, attempts=100, backoff_s=0))
>>> len(result.handled), [(item, type(exc).__name__) for item, exc in result.poison]
(19, [(13, 'ValueError')])
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

T = TypeVar("T")
BatchHandler = Callable[[list[T]], Awaitable[None]]

ALONE_ATTEMPTS = 3
"""Calls of a record alone, its first included, before it is poison while its neighbours went through."""

RETRIED_POISON_PER_BATCH = 3
"""Poison records of a batch that get their retries alone: once that many failed them all, the failures
are plainly the records', and the batch's next poison records are set aside on their first call alone
(a burst of bad records costs calls, not seconds of backoff each)."""


PROVEN_S = 60.0
"""A topic whose records went through within this long proves its handler's stores work."""


@dataclass
class StoresWork:
    """When each topic's records last went through: the proof a lone failing record is its own fault.

    A proof is taken by the next failing batch of its topics, so a store that fails in a way the kit
    does not know as an outage costs a quiet topic one dead letter at most; then its records wait,
    as every batch in which nothing goes through does, until records go through again."""

    handled_at: dict[str, float] = field(default_factory=dict)  # topic -> time.monotonic()

    def record(self, topics: Iterable[str]) -> None:
        self.handled_at.update(dict.fromkeys(set(topics), time.monotonic()))

    def take(self, topics: Iterable[str]) -> bool:
        last = min((self.handled_at.pop(topic, -math.inf) for topic in set(topics)), default=-math.inf)
        return time.monotonic() - last < PROVEN_S


@dataclass
class Isolation(Generic[T]):
    """What became of a batch: records handled, and poison records with what each raised."""

    handled: list[T] = field(default_factory=list)
    poison: list[tuple[T, Exception]] = field(default_factory=list)

    def merge(self, other: Isolation[T]) -> None:
        self.handled.extend(other.handled)
        self.poison.extend(other.poison)


class _NothingGoesThrough(Exception):
    """The first calls of a split all failed: no sign yet that the failure is the records'."""


@dataclass
class _Budget:
    """Failed calls allowed before the first success: enough to walk down to the batch's first record
    and past a few poison records there, not enough to split a batch in which nothing can succeed."""

    left: float
    succeeded: bool = False

    @classmethod
    def for_batch(cls, size: int, alone_attempts: int) -> _Budget:
        return cls(2 * math.ceil(math.log2(max(size, 2))) + 2 * alone_attempts)

    def failed(self) -> None:
        if not self.succeeded:
            self.left -= 1
            if self.left <= 0:
                raise _NothingGoesThrough


async def handle_isolating(
    items: Sequence[T],
    handle: BatchHandler[T],
    *,
    attempts: int,
    backoff_s: float = 0.1,
    max_backoff_s: float = 5.0,
    alone_attempts: int = ALONE_ATTEMPTS,
    proven: bool = False,
) -> Isolation[T]:
    """Handle `items` whole; if that fails, isolate the failing records (see the module docstring).
    `proven`: the handler went through on other records lately, so a lone record is judged as if
    its neighbours had gone through (the caller knows; a batch of one has no neighbours to ask)."""
    batch = list(items)
    if not batch:
        return Isolation()
    try:
        await handle(batch)
    except Exception as exc:
        error = exc
    else:
        return Isolation(handled=batch)
    if len(batch) > 1:
        split = _Split(handle, backoff_s, alone_attempts, _Budget.for_batch(len(batch), alone_attempts))
        try:
            result = await split.bisect(batch, error)
        except _NothingGoesThrough:
            pass
        else:
            if result.handled:
                return result
    elif proven:
        return await _Split(handle, backoff_s, alone_attempts).bisect(batch, error)
    return await _retry_whole(batch, handle, error, attempts, backoff_s, max_backoff_s)


@dataclass
class _Split(Generic[T]):
    """Depth-first halving of a failed batch. A record that fails alone is tried alone again
    (`alone_attempts` calls in all, with backoff) before it is poison, in its place in the batch, until
    RETRIED_POISON_PER_BATCH records have failed all their retries."""

    handle: BatchHandler[T]
    backoff_s: float = 0.1
    alone_attempts: int = 1
    budget: _Budget = field(default_factory=lambda: _Budget(math.inf))  # unbounded unless given
    confirmed: int = 0  # poison records that failed every retry alone

    async def bisect(self, failed: list[T], error: Exception) -> Isolation[T]:
        """`failed` raised `error` as a whole: handle each half alone, recursing into halves that fail."""
        if len(failed) == 1:
            return await self._alone(failed, error)
        middle = len(failed) // 2
        result: Isolation[T] = Isolation()
        for half in (failed[:middle], failed[middle:]):
            try:
                await self.handle(half)
            except Exception as exc:
                self.budget.failed()
                result.merge(await self.bisect(half, exc))
            else:
                self.budget.succeeded = True
                result.handled.extend(half)
        return result

    async def _alone(self, record: list[T], error: Exception) -> Isolation[T]:
        retries = self.alone_attempts if self.confirmed < RETRIED_POISON_PER_BATCH else 1
        for retry in range(1, retries):
            await asyncio.sleep(self.backoff_s * 2 ** (retry - 1))
            try:
                await self.handle(record)
            except Exception as exc:
                self.budget.failed()
                error = exc
            else:
                self.budget.succeeded = True
                return Isolation(handled=record)
        self.confirmed += retries > 1
        return Isolation(poison=[(record[0], error)])


async def _retry_whole(
    batch: list[T],
    handle: BatchHandler[T],
    error: Exception,
    attempts: int,
    backoff_s: float,
    max_backoff_s: float,
) -> Isolation[T]:
    """Nothing went through: retry the batch whole (`attempts` calls in all, the first made), then
    split it down to single records, each tried alone once (it was retried whole already)."""
    if attempts > 1:
        await asyncio.sleep(backoff_s)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts - 1),
                wait=wait_exponential(multiplier=backoff_s, max=max_backoff_s),
                reraise=True,
                before_sleep=_log_retry,
            ):
                with attempt:
                    await handle(batch)
        except Exception as exc:
            error = exc
        else:
            return Isolation(handled=batch)
    return await _Split(handle).bisect(batch, error)


def _log_retry(state: object) -> None:
    outcome = getattr(state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    log.warning(
        "batch handler failed (attempt %s), retrying: %r", getattr(state, "attempt_number", "?"), error
    )
