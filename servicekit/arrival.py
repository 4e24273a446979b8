"""An event's own time may not lie ahead of the record's arrival: what a producer writes must not move
a service's stream clock into the future.

Some consumers keep time by the events they read (the drift service's label join expires what waits
longer than its TTL in *event* time; training picks each entity's latest label by event time). A label
that a producer dates in the year 9999, by mistake or on purpose, would move that clock for good: every
prediction waiting for its label would expire at once, and so would every later one, and the entity's
label would outrank every true one. The record's Kafka timestamp bounds it: the broker refuses create
times more than `log.message.timestamp.after.max.ms` ahead of its own clock (one hour by default since
Kafka 4.0), so an event time more than `AHEAD_TOLERANCE_S` after its record's arrival is refused with a
reason, as ingest refuses a record's dates (`date_ahead_of_arrival`, the same tolerance). A record
without a timestamp is held to the consumer's clock instead. An event time before `EARLIEST` is refused
too (`too_early`): pandas, which holds the trainer's labels and the drift reports' windows, cannot, and
one such label stored would fail every training run after it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from contracts.common import ContractError
from contracts.envelope import Event
from servicekit.consumer import Delivery
from servicekit.deadletters import RawMessage

E = TypeVar("E", bound=Event[Any])

AHEAD_TOLERANCE_S = 300.0
AHEAD_OF_ARRIVAL = "ahead_of_arrival"
TOO_EARLY = "too_early"
EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)  # pandas' first nanosecond timestamp is a day earlier


def implausible_time(
    moment: datetime,
    raw: RawMessage,
    field: str,
    tolerance_s: float = AHEAD_TOLERANCE_S,
    clock: Callable[[], float] = time.time,
) -> ContractError | None:
    """Why `moment` (the event's `field`) is refused, or None when it is plausible."""
    if moment < EARLIEST:
        return ContractError(TOO_EARLY, f"{field} lies before {EARLIEST.date()}, the earliest date accepted")
    arrived = raw.timestamp_ms / 1000 if raw.timestamp_ms > 0 else clock()
    ahead = moment.timestamp() - arrived
    if ahead <= tolerance_s:
        return None
    return ContractError(
        AHEAD_OF_ARRIVAL,
        f"{field} lies {ahead:.0f} s after the record reached Kafka; at most {tolerance_s:.0f} s is allowed",
    )


async def admit_in_time(
    batch: Sequence[Delivery[E]],
    moment: Callable[[E], datetime],
    field: str,
    refuse: Callable[[RawMessage, ContractError], Awaitable[None]],
) -> list[Delivery[E]]:
    """The deliveries whose `moment` is plausible; each other one is refused (a dead letter with its
    reason) and left out."""
    admitted = []
    for delivery in batch:
        refused = implausible_time(moment(delivery.event), delivery.raw, field)
        if refused is None:
            admitted.append(delivery)
        else:
            await refuse(delivery.raw, refused)
    return admitted
