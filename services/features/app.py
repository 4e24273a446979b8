"""Composition root of the features service: ledger, Feast pusher, the records.clean subscription.

The broker is built without connecting and Feast is opened (and the definitions applied) in the
startup hook, in a thread: `import feast` takes seconds, so `create_app` stays cheap for the AsyncAPI
export and tests. Tests may pass a fake pusher.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from contracts.envelope import Event
from contracts.events import FeaturesUpdated, RecordCleaned
from feature_repo import FeatureStoreSettings
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Delivery, Subscriptions
from services.features.adapters.feast_push import FeastPusher, FeaturePusher
from services.features.adapters.ledger import PushLedger
from services.features.handlers import FeaturesHandler
from services.features.settings import FeaturesSettings


def store_settings(settings: FeaturesSettings) -> FeatureStoreSettings:
    return FeatureStoreSettings(
        settings.feature_store_dir,
        project=settings.feast_project,
        online_store_config=settings.feast_online_store,
    )


def create_app(settings: FeaturesSettings | None = None, *, pusher: FeaturePusher | None = None) -> FastAPI:
    settings = settings or FeaturesSettings()
    feast: FeastPusher | None = None
    if pusher is None:  # tests pass a fake; the real one is opened in the startup hook
        pusher = feast = FeastPusher(store_settings(settings))
    ledger = PushLedger(settings.resolved_ledger_path)
    broker = make_broker(settings)
    publisher = EventPublisher(broker, settings.service_name)
    subscriptions = Subscriptions(broker, publisher, settings.service_name, settings.max_handler_attempts)

    async def publish(event: Event[Any], topic: str) -> None:
        await publisher.publish(event, topic=topic)

    handler = FeaturesHandler(
        pusher=pusher,
        ledger=ledger,
        publish=publish,
        dead_letter=subscriptions.dead_letter,
        dataset=settings.dataset,
        updated_topic=settings.updated_topic,
        producer=settings.service_name,
    )

    @subscriptions.on_batch(settings.clean_topic, RecordCleaned, group_id=settings.consumer_group)
    async def on_records_clean(batch: list[Delivery[RecordCleaned]]) -> None:
        await handler.handle(batch)

    async def open_feast() -> None:
        if feast is not None:
            await asyncio.to_thread(feast.open)

    async def feast_ready() -> bool:
        return feast is None or feast.ready

    async def ledger_ready() -> bool:
        return await asyncio.to_thread(ledger.ping)

    async def close_ledger() -> None:
        ledger.close()

    app = create_service_app(
        settings,
        broker,
        title="Features service",
        subscriptions=subscriptions,
        publishes=(FeaturesUpdated,),
        readiness_checks={"feature_store": feast_ready, "ledger": ledger_ready},
        on_startup=[open_feast],
        on_shutdown=[close_ledger],
    )
    app.state.handler = handler
    app.state.ledger = ledger
    return app
