"""Composition root of the audit service: store, use cases, capture subscriptions, checkpoints, routes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from contracts.events import AuditCheckpointed
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.audit import erasure, routes
from services.audit.adapters.store import SqlAuditStore
from services.audit.checkpointer import Checkpointer
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.metrics import CHAIN_LENGTH
from services.audit.settings import AuditSettings
from services.audit.verification import TrailVerifier

log = logging.getLogger(__name__)


def create_app(settings: AuditSettings | None = None, *, store: SqlAuditStore | None = None) -> FastAPI:
    """Builds everything without connecting: the broker starts, and the schema is migrated, on startup."""
    settings = settings or AuditSettings()
    store = store or SqlAuditStore(
        settings.resolved_database_url, settings.database_app_role, erasure.subject_keys(settings)
    )
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

    # ONE consumer over every captured topic (one group, one fetch loop, one commit per batch): with
    # a consumer per topic, fifteen fetch loops, heartbeats and commits cost the audit and the broker
    # CPU per record even while most topics are quiet. A batch may mix topics; each row keeps its own.
    #
    # Upgrading a stack that ran the old layout (one group per topic, `<group_id>.<topic>`): the group
    # `<group_id>` is new, has no committed offset, and starts at the earliest record each topic still
    # holds (`start` below). Everything the old groups had not committed is read, so nothing is lost;
    # what they had is read again and skipped by the store (same event id or same coordinates). The
    # old groups are left idle: they expire with the broker's offsets.retention.minutes (7 days by
    # default), or can be deleted at once with kafka-consumer-groups.sh --delete.
    subscriptions.on_raw(
        *settings.topics,
        group_id=settings.consumer_group,
        batch=True,
        max_records=settings.batch_records,
        start="earliest",
    )(capture)

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
    app.state.trail = TrailVerifier.from_settings(settings, store)  # GET /verify; the CLI builds the same
    routes.install(app, settings)
    app.include_router(erasure.build_router())
    return app
