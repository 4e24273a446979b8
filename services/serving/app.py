"""Composition root: settings -> Feast reader, MLflow registry, Kafka, handlers -> the FastAPI app.

The broker is built but not connected, and nothing slow happens here: the feature store and the
champion are loaded by a background task started at startup (in threads), so `/health` answers at
once, `/ready` turns 200 when the store is open and a first look at the registry has been made, and
/predict answers 503 until a champion is loaded. Tests pass fakes for the registry and the reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import BatchScored, CanaryChanged, LabelObserved, ModelPromoted, PredictionMade
from servicekit import heap
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from servicekit.tasks import BackgroundTasks, retrying
from services.serving.adapters.feast_online import FeastOnlineFeatures
from services.serving.adapters.mlflow_registry import MlflowRegistry
from services.serving.adapters.outbox import EventOutbox
from services.serving.batch_jobs import BatchJobs
from services.serving.batch_routes import router as batch_router
from services.serving.domain.model import ModelSlot
from services.serving.handlers import OnlineFeatures, PredictionHandler
from services.serving.labels import LabelHandler, RecentPredictions
from services.serving.reloader import ModelRegistry, ModelReloader
from services.serving.routes import document_limits, router
from services.serving.settings import ServingSettings

log = logging.getLogger(__name__)

Publish = Callable[[Event[Any], str], Awaitable[None]]


def create_app(
    settings: ServingSettings | None = None,
    *,
    registry: ModelRegistry | None = None,
    features: OnlineFeatures | None = None,
    publish: Publish | None = None,
) -> FastAPI:
    """`registry`, `features` and `publish` replace MLflow, Feast and Kafka publication in tests."""
    settings = settings or ServingSettings()
    service = settings.service_name
    broker = make_broker(settings)
    publisher = EventPublisher(broker, service)
    subscriptions = Subscriptions(broker, publisher, service, max_attempts=settings.max_handler_attempts)
    feast: FeastOnlineFeatures | None = None
    if features is None:  # tests pass a fake; the real one is opened by the warm-up task
        features = feast = FeastOnlineFeatures(
            settings.feature_store_dir, settings.feast_project, settings.feast_online_store
        )
    reader: OnlineFeatures = features

    async def publish_outboxed(event: Event[Any]) -> None:
        topic = settings.batch_scored_topic if isinstance(event, BatchScored) else settings.predictions_topic
        await (publish or publisher.publish)(event, topic)

    async def publish_label(event: Event[Any]) -> None:
        await (publish or publisher.publish)(event, settings.labels_topic)

    slot = ModelSlot()
    outbox = EventOutbox(
        publish_outboxed,
        maxsize=settings.outbox_size,
        batch=settings.outbox_batch,
        retry_max_s=settings.outbox_retry_max_s,
        window_s=settings.outbox_window_ms / 1000,
    )
    recent = RecentPredictions(settings.recent_predictions)
    registry = registry or MlflowRegistry(settings)
    reloader = ModelReloader(
        slot,
        registry,
        settings.model_name,
        settings.champion_alias,
        settings.shadow_alias,
        settings.canary_alias,
    )
    batch_jobs = BatchJobs(
        settings.service_dir / "batch", slot, registry, outbox, service, settings.batch_chunk_rows,
        settings.batch_max_running, settings.batch_keep_jobs,
    )  # fmt: skip
    tasks = BackgroundTasks()
    warmed = asyncio.Event()

    # Every replica must reload, so each has its own group (see ServingSettings.instance_id).
    @subscriptions.on_event(settings.promotions_topic, ModelPromoted, group_id=settings.consumer_group)
    async def on_promoted(event: ModelPromoted, _: KafkaCoordinates) -> None:
        await reloader.on_promoted(event)

    @subscriptions.on_event(
        settings.canary_topic, CanaryChanged, group_id=f"{settings.consumer_group}.canary"
    )
    async def on_canary(event: CanaryChanged, _: KafkaCoordinates) -> None:
        if event.payload.model_name == settings.model_name:
            await reloader.refresh()  # the alias and its share are the truth; the event is a prompt

    async def warm_up() -> None:
        if feast is not None and not feast.ready:
            opener = feast.open
            await retrying(lambda: asyncio.to_thread(opener), what="opening the feature store", max_wait_s=30)
        await reloader.refresh()
        # Feast and MLflow leave millions of long-lived objects; out of the collector's sight, a full
        # collection does not stall requests for tens of milliseconds (servicekit/heap.py).
        heap.settle()
        warmed.set()
        if settings.champion_poll_s > 0:
            await reloader.poll_forever(settings.champion_poll_s)

    tasks.add("serving-warm-up", warm_up)

    async def start() -> None:
        outbox.start()

    async def loaded() -> bool:
        return warmed.is_set() and reader.ready

    app = create_service_app(
        settings,
        broker,
        title="serving",
        subscriptions=subscriptions,
        publishes=(PredictionMade, LabelObserved, BatchScored),
        readiness_checks={"models_and_features": loaded},
        on_startup=[start],
        # running batch jobs stop first, then queued events go out while still connected
        before_broker_stops=[batch_jobs.close, outbox.close],
        tasks=tasks,
    )
    app.state.slot = slot
    app.state.reloader = reloader
    app.state.outbox = outbox
    app.state.predictions = PredictionHandler(
        slot, reader, outbox, recent, service, out_of_profile=settings.out_of_profile
    )
    app.state.labels = LabelHandler(publish_label, recent, settings.label_dataset, service)
    app.state.batch_jobs = batch_jobs
    app.include_router(router)
    app.include_router(batch_router)
    document_limits(app, settings)
    return app
