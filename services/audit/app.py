"""Composition root of the audit service: store, use cases, capture subscriptions, checkpoints, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from contracts.events import AuditCheckpointed
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.audit import routes
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.metrics import CHAIN_LENGTH, CHECKPOINTS
from services.audit.settings import AuditSettings

log = logging.getLogger(__name__)


def create_app(settings: AuditSettings | None = None, *, store: SqlAuditStore | None = None) -> FastAPI:
    """Builds everything without connecting: the broker starts, and the schema is migrated, on startup."""
    settings = settings or AuditSettings()
    store = store or SqlAuditStore(settings.resolved_database_url, settings.database_app_role)
    audit = AuditService(
        store,
        content_free_topics=settings.content_free_topics,
        checkpoint_topic=settings.checkpoint_topic,
        verify_workers=settings.verify_workers,
    )
    broker = make_broker(settings)
    publisher = EventPublisher(broker, settings.service_name)
    subscriptions = Subscriptions(broker, publisher, settings.service_name, settings.max_handler_attempts)
    checkpoints = Checkpointer(audit, publisher, settings)

    async def capture(raws: list[RawMessage]) -> None:
        messages = [
            Captured(r.source.topic, r.source.partition, r.source.offset, r.timestamp_ms, r.key, r.value)
            for r in raws
        ]
        # The database work runs in a thread: the event loop keeps fetching and serving HTTP meanwhile.
        await asyncio.to_thread(audit.capture, messages)
        if audit.checkpoint_due(settings.checkpoint_every_events):
            checkpoints.nudge()  # published by the checkpoint task: a broker hiccup never fails a batch

    for topic in dict.fromkeys(settings.topics):
        # One consumer group per topic: a busy topic's rebalance never pauses the others.
        group = f"{settings.consumer_group}.{topic}"
        subscriptions.on_raw(topic, group_id=group, batch=True, max_records=settings.batch_records)(capture)

    async def migrate() -> None:
        store.migrate()
        CHAIN_LENGTH.set(store.head()[0].length)  # the chain as found, before the first batch arrives

    async def database_ready() -> bool:
        return await asyncio.to_thread(store.ping)

    async def dispose() -> None:
        store.dispose()

    app = create_service_app(
        settings,
        broker,
        title="Audit service",
        subscriptions=subscriptions,
        publishes=(AuditCheckpointed,),
        readiness_checks={"database": database_ready},
        on_startup=[migrate, checkpoints.start],
        on_shutdown=[checkpoints.stop, dispose],
    )
    app.state.audit = audit
    app.state.checkpoints = checkpoints
    routes.install(app, settings)
    return app


class Checkpointer:
    """Publishes the chain head every `checkpoint_interval_s` (when it moved) and on demand."""

    def __init__(self, audit: AuditService, publisher: EventPublisher, settings: AuditSettings) -> None:
        self.audit, self.publisher, self.settings = audit, publisher, settings
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._due = asyncio.Event()

    def nudge(self) -> None:
        self._due.set()

    async def publish(self, *, force: bool = False) -> AuditCheckpointed | None:
        async with self._lock:
            event = await asyncio.to_thread(self.audit.make_checkpoint, force=force)
            if event is not None:
                await self.publisher.publish(event, topic=self.settings.checkpoint_topic)
                CHECKPOINTS.inc()
                log.info("checkpoint at %d rows", event.payload.chain_length)
            return event

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="audit-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self.settings.checkpoint_interval_s)
            self._due.clear()
            try:
                await self.publish()
            except Exception:  # a broker hiccup must not end the loop; the next tick retries
                log.warning("publishing a checkpoint failed", exc_info=True)
