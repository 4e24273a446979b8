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
skipped. Errors are recognised by their types' names and modules, walking the exception's causes (not
past a service's own error, which is the record's, nor past a context the code suppressed), so the kit
imports no driver. Because a driver's "operational" error can also be one record's fault (a value
that breaks a statement), a batch that keeps failing is probed every few attempts: if half of it goes
through, the failure is the records', and the batch goes on to per-record isolation
(servicekit/isolation.py) like any other. HTTP routes that meet an outage answer 503 `unavailable`
(servicekit/errors.py).

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

from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential

from servicekit.metrics import DEPENDENCY_UNAVAILABLE

log = logging.getLogger(__name__)

REMIND_S = 30.0
MAX_WAIT_S = 10.0
PROBE_EVERY = 3  # failed attempts between two probes of a multi-record batch

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
# Subclasses of those that are one statement's fault, not the server's (psycopg: a statement timeout).
_RECORD_FAULT_TYPES = {"QueryCanceled", "QueryCanceledError"}
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
        if "ServiceError" in names or names & _RECORD_FAULT_TYPES:
            return None  # a service's own error, or a statement's, is the record's reason
        if names & _UNREACHABLE_TYPES:
            module = type(current).__module__.split(".")[0]
            return _DEPENDENCY_BY_MODULE.get(module, "network")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
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
    # Consumers waiting for each dependency: it is back when the last of them got through.
    waiting: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {name: outage.describe() for name, outage in self.current.items()}

    async def wait_out(
        self, call: Callable[[], Awaitable[None]], probe: Callable[[], Awaitable[bool]] | None = None
    ) -> bool:
        """Run `call` until it succeeds, waiting out dependency outages. True when it succeeded;
        False when it failed for another reason (the caller isolates the records), or when `probe`
        (tried every PROBE_EVERY failed attempts) gets part of the work through after all."""
        met: set[str] = set()
        failures = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: unavailable_dependency(e) is not None),
            wait=wait_exponential(multiplier=0.25, max=self.max_wait_s),
            stop=stop_never,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if failures and failures % PROBE_EVERY == 0 and probe is not None and await probe():
                        log.warning("part of a failing batch went through: its records' fault, not an outage")
                        return False
                    try:
                        await call()
                    except Exception as error:
                        failures += 1
                        dependency = unavailable_dependency(error)
                        if dependency is not None:
                            self._down(dependency, error, met)
                        raise
        except Exception:
            return False
        finally:
            for dependency in met:
                self._up(dependency)
        return True

    def _down(self, dependency: str, error: BaseException, met: set[str]) -> None:
        if dependency not in met:
            met.add(dependency)
            self.waiting[dependency] = self.waiting.get(dependency, 0) + 1
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
        """One consumer got through; the dependency is back once no consumer waits for it any more."""
        self.waiting[dependency] = max(self.waiting.get(dependency, 1) - 1, 0)
        if self.waiting[dependency]:
            return
        outage = self.current.pop(dependency, None)
        if outage is not None:
            DEPENDENCY_UNAVAILABLE.labels(self.service, dependency).set(0)
            log.warning("%s is back after %.1fs; consuming again", dependency, time.time() - outage.since)


def halves_probe(
    items: list[Any], handler: Callable[[list[Any]], Awaitable[None]]
) -> Callable[[], Awaitable[bool]] | None:
    """A probe for a batch that keeps failing as if a dependency were down: does either half go through?
    (Handled twice is harmless: handlers are idempotent.) None for a single record: nothing to compare."""
    if len(items) < 2:
        return None

    async def probe() -> bool:
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            try:
                await handler(half)
            except Exception:
                continue
            return True
        return False

    return probe
