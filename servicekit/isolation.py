"""One bad record never takes its neighbours with it: per-record isolation of a batch handler's failures.

A batch handler that raises is first retried whole, with backoff (tenacity): a store that blinked
should not cost anyone a record. If it keeps failing, the batch is split in halves and each half is
handled on its own, down to single records. A record that fails alone is *poison*; every record in
a half that succeeded is *handled*. The caller decides what poison means:

- some records were handled: the failure belongs to the poison records, which are dead-lettered
  alone, each with its reason, and their neighbours go on;
- none was handled: the failure is not the records' (a store is down, or every record is bad), so
  the caller redelivers the batch a bounded number of times before it gives up on it.

Handlers are idempotent (the platform's rule), so handling a half again after a failed whole is
harmless. A batch of n records with one poison record costs about 2*log2(n) extra calls.

>>> import asyncio
>>> async def handle(items: list[int]) -> None:
...     if 13 in items:
...         raise ValueError("thirteen")
>>> result = asyncio.run(handle_isolating(list(range(20)), handle, attempts=1))
>>> len(result.handled), [(item, type(exc).__name__) for item, exc in result.poison]
(19, [(13, 'ValueError')])
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

T = TypeVar("T")
BatchHandler = Callable[[list[T]], Awaitable[None]]


@dataclass
class Isolation(Generic[T]):
    """What became of a batch: records handled, and poison records with what each raised."""

    handled: list[T] = field(default_factory=list)
    poison: list[tuple[T, Exception]] = field(default_factory=list)

    def merge(self, other: Isolation[T]) -> None:
        self.handled.extend(other.handled)
        self.poison.extend(other.poison)


async def handle_isolating(
    items: Sequence[T],
    handle: BatchHandler[T],
    *,
    attempts: int,
    backoff_s: float = 0.1,
    max_backoff_s: float = 5.0,
) -> Isolation[T]:
    """Handle `items` whole (retried up to `attempts` times), else isolate the failing records."""
    batch = list(items)
    if not batch:
        return Isolation()
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(max(attempts, 1)),
            wait=wait_exponential(multiplier=backoff_s, max=max_backoff_s),
            reraise=True,
            before_sleep=_log_retry,
        ):
            with attempt:
                await handle(batch)
    except Exception as exc:
        return await _bisect(batch, handle, exc)
    return Isolation(handled=batch)


async def _bisect(failed: list[T], handle: BatchHandler[T], error: Exception) -> Isolation[T]:
    """`failed` raised `error` as a whole: handle each half alone, recursing into halves that fail."""
    if len(failed) == 1:
        return Isolation(poison=[(failed[0], error)])
    middle = len(failed) // 2
    result: Isolation[T] = Isolation()
    for half in (failed[:middle], failed[middle:]):
        try:
            await handle(half)
        except Exception as exc:
            result.merge(await _bisect(half, handle, exc))
        else:
            result.handled.extend(half)
    return result


def _log_retry(state: object) -> None:
    outcome = getattr(state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    log.warning(
        "batch handler failed (attempt %s), retrying: %r", getattr(state, "attempt_number", "?"), error
    )
