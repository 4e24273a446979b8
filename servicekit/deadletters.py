"""Dead letters: a message set aside with its reason, never its content (it may hold PII).

A dead letter's event id derives from (consumer, source coordinates, reason code), so the same
message set aside twice for the same reason (a redelivery after a crash, or a batch handled again
while its failures are isolated) is one event for every idempotent consumer downstream. Within a
process, a letter already sent is not sent again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from contracts.common import FieldError, KafkaCoordinates, Rejection
from contracts.events import DeadLettered, DeadLetteredPayload
from servicekit.broker import EventPublisher
from servicekit.metrics import DEAD_LETTERS, EVENTS_CONSUMED
from servicekit.replay import withholds

log = logging.getLogger(__name__)

DEAD_LETTER_NAMESPACE = uuid.UUID("0b6f4d1e-8c53-4b8e-9a5f-2d7c1e3a9f40")
_REMEMBERED = 10_000  # letters a process remembers having sent (a few batches' worth)


@dataclass(frozen=True)
class RawMessage:
    """One Kafka record as it arrived: nothing parsed yet."""

    source: KafkaCoordinates
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def dead_letter_id(consumer: str, source: KafkaCoordinates, code: str) -> uuid.UUID:
    where = f"{consumer}|{source.topic}|{source.partition}|{source.offset}|{code}"
    return uuid.uuid5(DEAD_LETTER_NAMESPACE, where)


class DeadLetters:
    """Publishes `DeadLettered` (acks=all) before the source offset is committed: none is lost."""

    def __init__(self, publisher: EventPublisher, consumer: str) -> None:
        self.publisher = publisher
        self.consumer = consumer
        self._sent: OrderedDict[uuid.UUID, None] = OrderedDict()

    async def send(self, raw: RawMessage, code: str, message: str, errors: list[FieldError]) -> None:
        event_id = dead_letter_id(self.consumer, raw.source, code)
        if event_id in self._sent:
            return
        value = raw.value or b""
        payload = DeadLetteredPayload(
            source=raw.source,
            consumer=self.consumer,
            reason=Rejection(code=code, message=message, errors=errors),
            raw_sha256=hashlib.sha256(value).hexdigest(),
            raw_size=len(value),
            key_sha256=hashlib.sha256(raw.key).hexdigest() if raw.key is not None else None,
        )
        event = DeadLettered.model_validate(
            {"event_id": event_id, "producer": self.consumer, "payload": payload}
        )
        await self.publisher.publish(event)
        self._sent[event_id] = None
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        # A replay sent nothing: it is counted in mlops_events_withheld_total, not as dead-lettered.
        if withholds(getattr(self.publisher, "broker", None)):
            log.info("a replay withheld the dead letter of %s: %s", raw.source.model_dump(), code)
            return
        DEAD_LETTERS.labels(self.consumer, raw.source.topic, code).inc()
        EVENTS_CONSUMED.labels(self.consumer, raw.source.topic, "dead_lettered").inc()
        log.warning("dead-lettered %s: %s", raw.source.model_dump(), code)


def failure_reason(exc: Exception, attempts: int, batch_size: int) -> str:
    """The exception's type only: its message may quote the record's values (PII)."""
    if batch_size == 1:
        return f"{type(exc).__name__} after {attempts} attempts"
    return f"{type(exc).__name__} on this record alone, when its batch of {batch_size} was isolated"
