"""The Kafka side of a subscription: the FastStream subscriber every consumer of the kit is made with
(the same fetch, offset and decoding options for every service), the `Subscription` that records it
for the AsyncAPI export (infra/asyncapi.py) and the replay CLI, and how a fetched record becomes a
`RawMessage`. The delivery rules applied to what it fetches are servicekit/consumer.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from faststream.kafka import KafkaBroker, Topic
from faststream.middlewares import AckPolicy

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from servicekit.broker import MAX_REQUEST_BYTES
from servicekit.deadletters import RawMessage
from servicekit.fetch_pace import FetchPace

BATCH_FETCH_MIN_BYTES = 256 * 1024
BATCH_WAIT_MS = 50


@dataclass
class Subscription:
    """What a service consumes (one consumer: one group over `topics`); the AsyncAPI export reads these
    to document payloads."""

    topics: tuple[str, ...]
    group_id: str
    event_types: tuple[type[Event], ...]
    batch: bool
    subscriber: Any = field(default=None, compare=False, repr=False)
    pace: FetchPace | None = field(default=None, compare=False, repr=False)  # batch subscribers only


def kafka_subscriber(
    broker: KafkaBroker,
    service: str,
    topics: tuple[str, ...],
    group_id: str,
    batch: bool,
    description: str,
    max_records: int = 500,
    start: Literal["earliest", "latest"] = "earliest",
) -> Any:
    """A FastStream subscriber of `group_id` over `topics`, undecoded, NACKed on error (the consumer
    commits only what its handler finished)."""
    # On a locked-down bus (any client security) topics are ops' to create (`mlops up`, contracts/
    # access.py): a service has no right to, and asking would only log a refusal per topic.
    declare = broker.specification.security is None
    return broker.subscriber(
        *(Topic(topic, declare=declare) for topic in topics),
        group_id=group_id,
        batch=batch,
        auto_offset_reset=start,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # Handlers read the raw bytes and parse them with the contracts; FastStream's own JSON
        # decoding would run first and die outside our dead-letter path (e.g. RecursionError
        # on deeply nested JSON), retrying that message forever.
        decoder=_no_decode,
        max_partition_fetch_bytes=MAX_REQUEST_BYTES,
        max_records=max_records if batch else None,
        # A batch subscriber lets the broker gather up to BATCH_FETCH_MIN_BYTES or BATCH_WAIT_MS
        # before answering: fewer, fuller fetches (the broker's CPU goes per request, and so does
        # a handler's fixed cost), for at most BATCH_WAIT_MS of extra latency per hop.
        fetch_min_bytes=BATCH_FETCH_MIN_BYTES if batch else 1,
        fetch_max_wait_ms=BATCH_WAIT_MS if batch else 500,
        # FastStream names each topic's channel `<title>:<topic>` when a subscriber reads several,
        # so the export's channels are `<service>:<topic>` either way.
        title=f"{service}:{topics[0]}" if len(topics) == 1 else service,
        description=description,
    )


async def _no_decode(message: Any, original: Any) -> None:
    return None


def records_of(raw_message: Any) -> tuple[Any, ...]:
    """A batch subscriber's records (a tuple from aiokafka, a list from the in-memory test broker)."""
    return tuple(raw_message) if isinstance(raw_message, tuple | list) else (raw_message,)


def raw_message(record: Any) -> RawMessage:
    return RawMessage(
        source=KafkaCoordinates(topic=record.topic, partition=record.partition, offset=record.offset),
        key=record.key,
        value=record.value,
        timestamp_ms=record.timestamp,
    )
