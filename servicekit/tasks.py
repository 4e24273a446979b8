"""What every service runs beside its consumers, owned once: background tasks that start with the
app and are cancelled (and awaited) when it stops, and retries with backoff (tenacity) for calls
that must eventually succeed (opening a store, flushing an outbox, publishing to a broker that is
coming back)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    """Named coroutines a service runs while it is up. The kit's app starts them once the broker is
    connected and cancels them before the broker stops; a task that fails is logged, not lost."""

    def __init__(self) -> None:
        self._factories: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._running: list[asyncio.Task[None]] = []

    def add(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self._factories.append((name, factory))

    @property
    def running(self) -> list[str]:
        return [task.get_name() for task in self._running if not task.done()]

    async def start(self) -> None:
        for name, factory in self._factories:
            task = asyncio.create_task(_logged(name, factory), name=name)
            self._running.append(task)

    async def stop(self) -> None:
        for task in self._running:
            task.cancel()
        for task in self._running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running.clear()


async def _logged(name: str, factory: Callable[[], Awaitable[None]]) -> None:
    try:
        await factory()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s failed", name)


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int | None = None,
    first_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[], None] | None = None,
    give_up_after_s: float | None = None,
) -> T:
    """`call()` until it returns, waiting exponentially longer between tries (at most `max_wait_s`);
    forever unless `attempts` or `give_up_after_s` bounds it, then the last error is raised."""
    stops: list[stop_base] = [stop_after_attempt(attempts)] if attempts else []
    if give_up_after_s is not None:
        stops.append(stop_after_delay(give_up_after_s))

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s failed (attempt %d, %r); retrying in %.1f s", what, state.attempt_number, error, wait)
        if on_retry is not None:
            on_retry()

    async for attempt in AsyncRetrying(
        stop=stop_any(*stops) if stops else stop_never,
        wait=wait_exponential(multiplier=first_wait_s, max=max_wait_s),
        reraise=True,
        before_sleep=log_retry,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity either returned or raised")  # pragma: no cover
