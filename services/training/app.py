"""Composition root of the training service: state, Feast source, MLflow registry, trainer, the
labels / training.requested / drift.detected subscriptions, the retraining schedule's task, and the
routes.

Feast and MLflow take seconds to import and MLflow's first model load seconds more: both are opened
once in the startup hook (in a thread), never per request. Tests may pass fakes for both.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from fastapi import FastAPI

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    CanaryChanged,
    DriftDetected,
    LabelObserved,
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    TrainingRequested,
)
from feature_repo import FeatureStoreSettings
from servicekit.app import create_service_app
from servicekit.arrival import admit_in_time
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Delivery, Subscriptions
from servicekit.tasks import BackgroundTasks
from servicekit.watermark import ConsumedOffsets, committed_offsets, end_offsets
from services.training import routes
from services.training.adapters.code_version import code_version
from services.training.adapters.feast_source import FeastTrainingSource, TrainingSource
from services.training.adapters.mlflow_registry import MlflowRegistry, ModelRegistry
from services.training.adapters.state import TrainingState
from services.training.canaries import Canaries
from services.training.domain.policy import load_policy
from services.training.handlers import Topics, TrainingService
from services.training.rollbacks import Rollbacks
from services.training.settings import TrainingSettings
from services.training.trainer import Trainer


def create_app(
    settings: TrainingSettings | None = None,
    *,
    source: TrainingSource | None = None,
    registry: ModelRegistry | None = None,
) -> FastAPI:
    settings = settings or TrainingSettings()
    feast = source or FeastTrainingSource(
        FeatureStoreSettings(
            settings.feature_store_dir,
            project=settings.feast_project,
            online_store_config=settings.feast_online_store,
        )
    )
    mlflow = registry or MlflowRegistry(
        settings.mlflow_uri,
        settings.mlflow_artifact_root,
        settings.model_name,
        settings.experiment,
        keep_rejected_versions=settings.keep_rejected_versions,
    )
    state = TrainingState(settings.resolved_state_path)
    policy = partial(load_policy, settings.policy_file, settings.schedule_overrides)
    trainer = Trainer(state=state, source=feast, registry=mlflow, policy=policy, code_version="unknown")
    broker = make_broker(settings)
    publisher = EventPublisher(broker, settings.service_name)
    subscriptions = Subscriptions(broker, publisher, settings.service_name, settings.max_handler_attempts)
    group = settings.consumer_group
    labels_group = f"{group}.labels"

    async def publish(event: Event[Any], topic: str) -> None:
        await publisher.publish(event, topic=topic)

    training = TrainingService(
        trainer=trainer,
        state=state,
        publish=publish,
        topics=Topics(
            settings.requests_topic, settings.trained_topic, settings.promoted_topic, settings.rejected_topic
        ),
        model_name=settings.model_name,
        dataset=settings.dataset,
        policy=policy,
        producer=settings.service_name,
        label_watermark=partial(end_offsets, settings, settings.labels_topic),
        labels_consumed=ConsumedOffsets(
            partial(committed_offsets, settings, labels_group, settings.labels_topic)
        ),
        watermark_wait_s=settings.label_watermark_wait_s,
        claim_lease_s=settings.run_claim_lease_s,
    )

    # The labels and the training requests are consumed by separate consumers (their own groups and
    # fetch loops): a run waiting for its label watermark does not hold the labels consumer back.
    @subscriptions.on_batch(settings.labels_topic, LabelObserved, group_id=labels_group)
    async def on_labels_observed(batch: list[Delivery[LabelObserved]]) -> None:
        # Producers write labels: one dated ahead of its arrival would outrank the entity's true ones.
        usable = await admit_in_time(
            batch, lambda e: e.payload.event_time, "payload.event_time", subscriptions.refuse
        )
        await training.on_labels([delivery.event for delivery in usable])
        training.labels_consumed.record(delivery.source for delivery in batch)  # stored: consumed

    @subscriptions.on_event(settings.requests_topic, TrainingRequested, group_id=group)
    async def requests(event: TrainingRequested, _: KafkaCoordinates) -> None:
        await training.on_training_requested(event)

    @subscriptions.on_event(settings.drift_topic, DriftDetected, group_id=f"{group}.drift")
    async def drift(event: DriftDetected, _: KafkaCoordinates) -> None:
        await training.on_drift(event)

    async def open_adapters() -> None:
        policy()  # a broken policy file stops the service at start, not at the first run
        trainer.code_version = await asyncio.to_thread(code_version)
        for adapter in (feast, mlflow):
            opener = getattr(adapter, "open", None)
            if opener is not None:
                await asyncio.to_thread(opener)

    tasks = BackgroundTasks()  # the retraining schedule, checked once the broker is up
    tasks.add("training-schedule", lambda: training.schedules.run(settings.schedule_check_s))

    async def state_ready() -> bool:
        return await asyncio.to_thread(state.ping)

    app = create_service_app(
        settings,
        broker,
        title="Training service",
        subscriptions=subscriptions,
        publishes=(TrainingRequested, ModelTrained, ModelPromoted, ModelRejected, CanaryChanged),
        readiness_checks={"state": state_ready},
        on_startup=[open_adapters],
        tasks=tasks,
    )
    app.state.training = training
    app.state.rollbacks = Rollbacks(
        mlflow,
        publish,
        settings.promoted_topic,
        settings.model_name,
        settings.service_name,
        history=training.history,
    )
    app.state.canaries = Canaries(
        mlflow, publish, settings.canary_topic, settings.model_name, settings.service_name
    )
    routes.install(app)
    return app
