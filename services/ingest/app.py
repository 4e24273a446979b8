"""Composition root: settings -> schema, policy, Presidio, Kafka -> the FastAPI app.

The broker is built but not connected, and Presidio is loaded in the startup hook, so the AsyncAPI
export and tests can call `create_app` cheaply. Tests pass fakes for the scrubber and the publisher.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from contracts.events import RecordCleaned, RecordRejected
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.ingest.adapters.kafka_out import KafkaOutcomePublisher
from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.adapters.names import identifier_names
from services.ingest.domain.events import Source
from services.ingest.domain.identifiers import GuardedValidator
from services.ingest.domain.privacy import PiiPolicyApplier, TextScrubber
from services.ingest.domain.schema import load_schema
from services.ingest.handlers import IngestHandler, OutcomePublisher, RawInput, RecordLedger, Topics
from services.ingest.routes import document_body, router
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def create_app(
    settings: IngestSettings | None = None,
    *,
    scrubber: TextScrubber | None = None,
    publisher: OutcomePublisher | None = None,
    ledger: RecordLedger | None = None,
) -> FastAPI:
    """Tests pass fakes for the scrubber and the publisher, and `SqliteRecordLedger(None)` (in memory)
    for the ledger; by default it lives at `settings.resolved_ledger_path` and survives restarts."""
    settings = settings or IngestSettings()
    schema = load_schema(settings.schema_file)
    kafka_out: KafkaOutcomePublisher | None = None
    if publisher is None:  # tests pass a fake; the real one is started and stopped with the app
        publisher = kafka_out = KafkaOutcomePublisher(settings)
    sqlite_ledger = SqliteRecordLedger(settings.resolved_ledger_path) if ledger is None else None
    salt = settings.pii_salt.get_secret_value().encode()
    handler = IngestHandler(
        schema=schema,
        validator=GuardedValidator(
            schema, settings.max_record_bytes, settings.identifier_key, identifier_names()
        ),
        policy=PiiPolicyApplier(schema, salt),
        publisher=publisher,
        topics=Topics(settings.raw_topic, settings.clean_topic, settings.rejected_topic),
        producer=settings.service_name,
        scrubber=scrubber,
        ledger=ledger or sqlite_ledger,
        digest_key=salt,
        retry_max_s=settings.publish_retry_max_s,
    )
    broker = make_broker(settings)
    subscriptions = Subscriptions(
        broker,
        EventPublisher(broker, settings.service_name),
        settings.service_name,
        max_attempts=settings.max_handler_attempts,
    )

    @subscriptions.on_raw(settings.raw_topic, group_id=settings.consumer_group, batch=True)
    async def consume(raws: list[RawMessage]) -> None:
        await handler.handle([_raw_input(raw) for raw in raws])

    async def load_scrubber() -> None:
        if handler.scrubber is None and schema.text_fields:
            from services.ingest.adapters.presidio import load_presidio_scrubber

            policy = schema.free_text
            handler.scrubber = await asyncio.to_thread(
                load_presidio_scrubber,
                policy.entities,
                policy.score_threshold,
                policy.ner_gate,
                settings.text_batch_size,
                settings.text_cache_size,
            )

    async def start_publisher() -> None:
        if kafka_out is not None:
            await kafka_out.start()

    async def stop_publisher() -> None:
        if kafka_out is not None:
            await kafka_out.stop()

    async def close_ledger() -> None:
        if sqlite_ledger is not None:
            sqlite_ledger.close()

    async def ledger_ready() -> bool:
        return sqlite_ledger is None or await asyncio.to_thread(sqlite_ledger.ping)

    async def scrubber_ready() -> bool:
        return handler.scrubber is not None or not schema.text_fields

    app = create_service_app(
        settings,
        broker,
        title="ingest",
        subscriptions=subscriptions,
        publishes=(RecordCleaned, RecordRejected),
        readiness_checks={"pii_scrubber": scrubber_ready, "ledger": ledger_ready},
        on_startup=[load_scrubber, start_publisher],  # then the kit freezes the heap
        on_shutdown=[stop_publisher, close_ledger],
    )
    app.state.handler = handler
    app.include_router(router)
    document_body(app, schema, settings)
    return app


def _raw_input(raw: RawMessage) -> RawInput:
    source = Source(raw.source.topic, raw.source.partition, raw.source.offset, raw.timestamp_ms)
    return RawInput(source, raw.key, raw.value)
