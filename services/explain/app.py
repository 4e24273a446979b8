"""Composition root: settings -> MLflow models, OmniXAI engine, SQLite store, Kafka, handlers -> app.

The broker is built but not connected and nothing slow happens here. predictions.made fills the
local prediction store; model.promoted triggers global explanations (in a worker thread); /explain
serves local ones. Tests pass fakes for the models and for publication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import ExplanationProduced, ModelPromoted, PredictionMade
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Delivery, Subscriptions
from services.explain.adapters.mlflow_models import MlflowModels
from services.explain.adapters.omnixai_engine import OmniXaiEngine
from services.explain.adapters.prediction_store import SqlitePredictions
from services.explain.handlers import (
    ExplainHandler,
    GlobalHandler,
    LocalExplainer,
    Models,
    PredictionRecorder,
)
from services.explain.routes import router
from services.explain.settings import ExplainSettings

log = logging.getLogger(__name__)

Publish = Callable[[Event[Any], str], Awaitable[None]]


def create_app(
    settings: ExplainSettings | None = None,
    *,
    models: Models | None = None,
    engine: LocalExplainer | None = None,
    publish: Publish | None = None,
) -> FastAPI:
    settings = settings or ExplainSettings()
    service = settings.service_name
    broker = make_broker(settings)
    publisher = EventPublisher(broker, service)
    subscriptions = Subscriptions(broker, publisher, service, max_attempts=settings.max_handler_attempts)
    models = models or MlflowModels(settings)
    engine = engine or OmniXaiEngine(
        settings.background_rows,
        settings.shap_nsamples,
        settings.lime_samples,
        settings.seed,
        exact_linear=settings.exact_linear_shap,
    )
    store = SqlitePredictions(settings.service_dir / "predictions.sqlite", settings.max_predictions)

    async def publish_explanation(event: Event[Any]) -> None:
        send = publish if publish is not None else publisher.publish
        await send(event, settings.explanations_topic)

    recorder = PredictionRecorder(store)
    local = ExplainHandler(settings, models, engine, store, publish_explanation)
    global_ = GlobalHandler(settings, models, publish_explanation)

    @subscriptions.on_batch(settings.predictions_topic, PredictionMade)
    async def on_predictions_made(batch: list[Delivery[PredictionMade]]) -> None:
        await recorder.on_predictions([delivery.event for delivery in batch])

    @subscriptions.on_event(settings.promotions_topic, ModelPromoted)
    async def on_promoted(event: ModelPromoted, _: KafkaCoordinates) -> None:
        await global_.on_promoted(event)

    async def stop() -> None:
        local.pool.shutdown(wait=False, cancel_futures=True)
        store.close()

    async def global_uri(version: str) -> str | None:
        return await asyncio.to_thread(models.global_uri, version)

    app = create_service_app(
        settings,
        broker,
        title="explain",
        subscriptions=subscriptions,
        publishes=(ExplanationProduced,),
        on_shutdown=[stop],
    )
    app.state.explain = local
    app.state.global_handler = global_
    app.state.recorder = recorder
    app.state.global_uri = global_uri
    app.include_router(router)
    return app
