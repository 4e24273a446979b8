"""Composition root: settings -> policy, SQLite state and outbox, Label Studio, MLflow, Kafka -> app.

The broker is built but not connected and nothing slow happens here (the state file, the pseudonym
key and the Label Studio token are read on first use). The use cases, each given what it uses:
predictions.made, drift.detected and explanation.produced feed the intake (intake.py);
labels.observed feeds the labels (labels.py: settling, publishing, the rule of precedence);
annotation.webhooks carries the webhook bodies the route appended (webhooks.py); one background task
syncs with Label Studio (sync.py), another sends labels left in the outbox; routes.py reads the queue
(views.py).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI

from contracts.envelope import Event
from contracts.events import DriftDetected, ExplanationProduced, LabelObserved, PredictionMade
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Delivery, Subscriptions
from servicekit.deadletters import RawMessage
from servicekit.outbox import SqliteOutbox
from servicekit.tasks import BackgroundTasks
from services.annotation.adapters.label_studio import LabelStudioApi
from services.annotation.adapters.store import AnnotationStore
from services.annotation.adapters.thresholds import MlflowThresholds
from services.annotation.domain.policy import SamplingPolicy
from services.annotation.errors import BusUnavailable
from services.annotation.intake import Intake
from services.annotation.labels import Labels
from services.annotation.metrics import ANNOTATION_TO_LABEL, set_tasks_by_state
from services.annotation.ports import LabelStudio, Thresholds
from services.annotation.routes import router
from services.annotation.settings import WEBHOOK_KEY_NAME, AnnotationSettings
from services.annotation.sync import LabelStudioSync
from services.annotation.views import QueueView
from services.annotation.webhooks import Webhooks

log = logging.getLogger(__name__)


def load_policy(path: Path) -> SamplingPolicy:
    return SamplingPolicy.from_mapping(yaml.safe_load(path.read_text()) if path.exists() else None)


def pseudonym_key(path: Path) -> bytes:
    """The HMAC key of annotators' pseudonyms: generated once (0600), then read."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())


def webhook_key(settings: AnnotationSettings) -> str | None:
    """ANNOTATION_WEBHOOK_API_KEY, else the `label-studio-webhook` entry of <secrets>/api-keys.json."""
    if settings.webhook_api_key is not None:
        return settings.webhook_api_key.get_secret_value() or None
    keys_file = settings.secrets_dir / "api-keys.json"
    try:
        entry = json.loads(keys_file.read_text()).get(WEBHOOK_KEY_NAME)
    except (OSError, ValueError, AttributeError):
        return None
    key = entry.get("key") if isinstance(entry, dict) else None
    return str(key) if key else None


class _LazyKey:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def get(self) -> bytes:
        if self._key is None:
            self._key = pseudonym_key(self.path)
        return self._key


def create_app(
    settings: AnnotationSettings | None = None,
    *,
    label_studio: LabelStudio | None = None,
    thresholds: Thresholds | None = None,
) -> FastAPI:
    settings = settings or AnnotationSettings()
    service = settings.service_name
    broker = make_broker(settings)
    publisher = EventPublisher(broker, service)
    subscriptions = Subscriptions(broker, publisher, service, max_attempts=settings.max_handler_attempts)
    policy = load_policy(settings.policy_file)
    store = AnnotationStore(settings.service_dir / "annotation.sqlite", settings.max_remembered)
    api = LabelStudioApi(
        settings.label_studio_url, settings.credentials_path, settings.label_studio_timeout_s
    )

    async def publish(event: Event[Any], topic: str) -> None:
        await publisher.publish(event, topic)
        if isinstance(event, LabelObserved):
            ANNOTATION_TO_LABEL.observe(
                max(0.0, event.occurred_at.timestamp() - event.payload.event_time.timestamp())
            )

    outbox = SqliteOutbox(store.db, publish)
    key = _LazyKey(settings.pseudonym_key_path)
    ls = label_studio or api
    labels = Labels(settings, policy, store, outbox, pseudonym_key=b"")  # the key is read at start
    sync = LabelStudioSync(settings, policy, store, ls, labels, webhook_key(settings))
    intake = Intake(
        policy,
        store,
        thresholds or MlflowThresholds(settings.mlflow_uri, settings.threshold_retry_s),
        chosen=sync.wake,
    )
    webhooks = Webhooks(store, ls, labels, settings.max_webhook_bytes)
    queue = QueueView(settings, store, outbox, sync)
    size = settings.consume_batch_size

    @subscriptions.on_batch(settings.predictions_topic, PredictionMade, max_records=size)
    async def on_predictions(batch: list[Delivery[PredictionMade]]) -> None:
        await intake.on_predictions([d.event for d in batch])

    @subscriptions.on_batch(settings.drift_topic, DriftDetected)
    async def on_drift(batch: list[Delivery[DriftDetected]]) -> None:
        await intake.on_drift([d.event for d in batch])

    @subscriptions.on_batch(settings.explanations_topic, ExplanationProduced)
    async def on_explanations(batch: list[Delivery[ExplanationProduced]]) -> None:
        await intake.on_explanations([d.event for d in batch])

    @subscriptions.on_batch(settings.labels_topic, LabelObserved, max_records=size)
    async def on_labels(batch: list[Delivery[LabelObserved]]) -> None:
        await labels.on_client_labels([d.event for d in batch])

    async def dead_letter(raw: RawMessage, code: str, message: str) -> None:
        await subscriptions.dead_letter(raw, code, message, [])

    @subscriptions.on_raw(settings.webhooks_topic)
    async def on_webhooks(records: list[RawMessage]) -> None:
        await webhooks.on_records(records, dead_letter)

    async def append_webhook(body: bytes, key: bytes | None) -> None:
        try:
            await broker.publish(
                body, settings.webhooks_topic, key=key, headers={"content-type": "application/json"}
            )
        except Exception as exc:
            raise BusUnavailable(
                f"the webhook could not be appended to Kafka ({type(exc).__name__})"
            ) from None

    async def start() -> None:
        labels.pseudonym_key = key.get()
        set_tasks_by_state(store.counts())

    async def stop() -> None:
        await api.close()
        store.close()

    async def state_ok() -> bool:
        return store.db.ping()

    tasks = BackgroundTasks()
    tasks.add("annotation-labels", labels.flush_forever)
    if settings.replay is None:
        tasks.add("annotation-sync", sync.sync_forever)
    else:  # a replay rebuilds the state from the log; Label Studio keeps the tasks the service made
        log.info("replay: the state is rebuilt from the log; nothing is sent to Label Studio")
    app = create_service_app(
        settings,
        broker,
        title="annotation",
        subscriptions=subscriptions,
        publishes=(LabelObserved,),
        readiness_checks={"state": state_ok},
        on_startup=[start],
        on_shutdown=[stop],
        tasks=tasks,
    )
    app.state.intake = intake
    app.state.labels = labels
    app.state.sync = sync
    app.state.webhooks = webhooks
    app.state.queue = queue
    app.state.append_webhook = append_webhook
    app.include_router(router)
    return app
