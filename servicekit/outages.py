"""A dependency that is down is nobody's record's fault: consumers wait it out instead of dead-lettering.

When a database, the online store, an HTTP dependency or the broker itself does not answer, every
record of a batch fails alike. Isolating the batch would then dead-letter all of them, and their
neighbours after them, for as long as the outage lasts. Instead a consumer retries the whole batch with
capped exponential backoff (tenacity), for as long as it takes, and says so:

- `/ready` answers 503 and names each unavailable dependency, since when and the error's type;
- `mlops_dependency_unavailable{service,dependency}` is 1 while it lasts;
- the log has one warning when it starts, one every `REMIND_S` while it lasts, and one line when the
  dependency is back, with how long it was away.

Offsets are not committed meanwhile, so nothing is lost and, once the dependency answers, nothing is
skipped. Errors are recognised by their types' names and modules, walking the exception's causes, so
the kit imports no driver. What is not an outage (a bug, a bad record) goes on to per-record isolation
(servicekit/isolation.py). HTTP routes that meet an outage answer 503 `unavailable` (servicekit/errors.py).

A consumer that waits longer than Kafka's `max.poll.interval.ms` (5 minutes) leaves its group and
rejoins when it polls again: the batch is then delivered again, to whichever member has it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never, wait_exponential

from servicekit.metrics import DEPENDENCY_UNAVAILABLE

log = logging.getLogger(__name__)

REMIND_S = 30.0
MAX_WAIT_S = 10.0

# Exception type names that mean "the other side did not answer", whatever the library.
_UNREACHABLE_TYPES = {
    "OperationalError",  # sqlalchemy, psycopg, sqlite3 (a lost connection, a locked database)
    "InterfaceError",  # sqlalchemy, psycopg: the connection is closed
    "DisconnectionError",
    "ConnectionError",  # the builtin, redis, requests
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TimeoutError",  # the builtin, redis
    "TransportError",  # httpx
    "KafkaConnectionError",
    "KafkaTimeoutError",
    "RequestTimedOutError",
    "NotEnoughReplicasError",
    "NotEnoughReplicasAfterAppendError",
    "NotLeaderForPartitionError",
    "LeaderNotAvailableError",
}
# What to call the dependency, by the top-level module of the exception's type.
_DEPENDENCY_BY_MODULE = {
    "sqlalchemy": "database",
    "psycopg": "database",
    "sqlite3": "database",
    "redis": "redis",
    "requests": "http",
    "urllib3": "http",
    "httpx": "http",
    "aiokafka": "kafka",
    "kafka": "kafka",
}


class DependencyUnavailable(Exception):
    """Raised by an adapter that knows which of its dependencies did not answer."""

    def __init__(self, dependency: str, message: str = "") -> None:
        super().__init__(message or f"{dependency} is unavailable")
        self.dependency = dependency


def unavailable_dependency(exc: BaseException) -> str | None:
    """The dependency that `exc` (or one of its causes) says did not answer, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DependencyUnavailable):
            return current.dependency
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & _UNREACHABLE_TYPES:
            module = type(current).__module__.split(".")[0]
            return _DEPENDENCY_BY_MODULE.get(module, "network")
        current = current.__cause__ or current.__context__
    return None


@dataclass
class Outage:
    since: float  # time.time()
    error: str  # the exception's type name (never its message: it may quote a record)
    reminded: float = field(default_factory=time.monotonic)

    def describe(self) -> dict[str, Any]:
        return {
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.since, 1),
            "error": self.error,
        }


@dataclass
class Outages:
    """The service's dependencies that are down right now, as its consumers met them."""

    service: str
    max_wait_s: float = MAX_WAIT_S
    current: dict[str, Outage] = field(default_factory=dict)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {name: outage.describe() for name, outage in self.current.items()}

    async def wait_out(self, call: Callable[[], Awaitable[None]]) -> bool:
        """Run `call` until it succeeds, waiting out dependency outages. True when it succeeded;
        False when it failed for another reason (the caller isolates the records)."""
        met: set[str] = set()

        def note(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if error is not None:
                self._down(unavailable_dependency(error) or "unknown", error, met)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: unavailable_dependency(e) is not None),
            wait=wait_exponential(multiplier=0.25, max=self.max_wait_s),
            stop=stop_never,
            before_sleep=note,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await call()
        except Exception:
            return False
        finally:
            for dependency in met:
                self._up(dependency)
        return True

    def _down(self, dependency: str, error: BaseException, met: set[str]) -> None:
        met.add(dependency)
        outage = self.current.get(dependency)
        if outage is None:
            self.current[dependency] = Outage(time.time(), type(error).__name__)
            DEPENDENCY_UNAVAILABLE.labels(self.service, dependency).set(1)
            log.warning(
                "%s is unavailable (%s): waiting for it; records wait in Kafka, none is dead-lettered",
                dependency,
                type(error).__name__,
            )
        elif time.monotonic() - outage.reminded >= REMIND_S:
            outage.reminded = time.monotonic()
            log.warning(
                "%s still unavailable after %.0fs (%s)", dependency, time.time() - outage.since, outage.error
            )

    def _up(self, dependency: str) -> None:
        outage = self.current.pop(dependency, None)
        if outage is not None:
            DEPENDENCY_UNAVAILABLE.labels(self.service, dependency).set(0)
            log.warning("%s is back after %.1fs; consuming again", dependency, time.time() - outage.since)
