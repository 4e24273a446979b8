"""The FastStream Kafka broker every service uses, and the publisher that puts events on it."""

from __future__ import annotations

import logging
import ssl
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts.envelope import Event
from contracts.registry import encode_event
from servicekit.metrics import EVENTS_PUBLISHED, EVENTS_WITHHELD
from servicekit.replay import ReplayBroker, withholds
from servicekit.settings import ServiceSettings

# Large enough for the 5 MB records producers may send (they must reach ingest to be rejected).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# What the platform's producers send: lz4 batches (JSON envelopes shrink about 3-5x; lz4 costs the
# least CPU of Kafka's codecs), held up to LINGER_MS so that a handler's outgoing events of one batch
# travel in one request per partition.
COMPRESSION: Literal["lz4"] = "lz4"
LINGER_MS = 5


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username or "", password, ssl_context=context, use_ssl=context is not None
    )


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    """acks=all + idempotence: an acknowledged publish survives a broker failover and is never doubled
    by the producer's own retries. A replay process (settings.replay) gets the replay's broker."""
    options: dict[str, Any] = dict(
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_REQUEST_BYTES,
        linger_ms=LINGER_MS,
        compression_type=COMPRESSION,
        security=kafka_security(settings),
        # FastStream's own logs go through ours (JSON in services). The name stays outside the
        # "faststream" tree, whose handler would print them in FastStream's format; each message
        # is logged at DEBUG.
        logger=logging.getLogger("servicekit.bus"),
        log_level=logging.DEBUG,
        description=f"Kafka connection of the {settings.service_name} service",
    )
    if settings.replay is not None:
        return ReplayBroker(settings.replay, settings.kafka_servers, **options)
    return KafkaBroker(settings.kafka_servers, **options)


class EventPublisher:
    """Publishes contract events to their own topic, keyed as the contract says, and counts them
    (as withheld, not published, in a replay that publishes nothing)."""

    def __init__(self, broker: KafkaBroker, service: str) -> None:
        self.broker = broker
        self.service = service

    async def publish(self, event: Event, topic: str | None = None) -> None:
        """Publish to the event's own topic (`topic` overrides it, e.g. for isolated tests)."""
        topic = topic or event.topic
        await self.broker.publish(
            encode_event(event),
            topic,
            key=event.key(),
            headers={"content-type": "application/json", "event-type": event.event_type},
            correlation_id=event.correlation_id,
        )
        sent = EVENTS_WITHHELD if withholds(self.broker) else EVENTS_PUBLISHED
        sent.labels(self.service, topic).inc()
