"""Running the features and training services on the real broker with a real Feast repo and MLflow
(shared by the integration modules; not a test module of its own)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload, RecordCleaned, RecordCleanedPayload
from contracts.registry import parse_event
from servicekit.auth import hash_key
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.features.app import create_app as create_features
from services.features.settings import FeaturesSettings
from services.training.app import create_app as create_training
from services.training.settings import TrainingSettings
from tests.support import create_topic, probe_settings
from workbench.demo_data import ApplicationStream, LoanApplication

OPS_KEY = "mlops_integration-test-ops-key"
PII = ("applicant_name", "email", "phone", "card_number", "ssn", "notes")


def applications(n: int, prefix: str, seed: int = 11, start: datetime | None = None) -> list[LoanApplication]:
    return ApplicationStream(seed=seed, id_prefix=prefix, start=start).take(n)


def cleaned(app: LoanApplication, offset: int) -> RecordCleaned:
    record = {k: v for k, v in app.record.items() if k not in PII}  # as ingest would have scrubbed it
    payload = RecordCleanedPayload(
        dataset="loan_applications",
        entity_id=record["application_id"],
        event_time=datetime.fromisoformat(record["applied_at"]),
        record=record,
        source=KafkaCoordinates(topic="records.raw", partition=0, offset=offset),
        scrubbed_fields=list(PII),
    )
    return RecordCleaned.create(payload, producer="ingest")


def observed(
    app: LoanApplication, label: str | None = None, delay: timedelta = timedelta(seconds=5)
) -> LabelObserved:
    at = datetime.fromisoformat(app.record["applied_at"]) + delay
    payload = LabelObservedPayload(
        dataset="loan_applications",
        entity_id=app.record["application_id"],
        label=label or app.label,
        event_time=at,
    )
    return LabelObserved.create(payload, producer="demo-producer")


class Platform:
    """Features + training on their own topics and state folder, plus a probe that publishes and listens."""

    def __init__(self, bootstrap: str, state_dir: Path, **training_overrides: Any) -> None:
        run = uuid.uuid4().hex[:8]
        names = ("clean", "updated", "labels", "requests", "drift", "trained", "promoted", "rejected")
        self.topics = {name: f"test.{name}.{run}" for name in names}
        common: dict[str, Any] = {"kafka_bootstrap_servers": bootstrap, "state_dir": state_dir}
        self.features_settings = FeaturesSettings(
            **common,
            group_id=f"features-{run}",
            clean_topic=self.topics["clean"],
            updated_topic=self.topics["updated"],
        )
        self.training_settings = TrainingSettings(
            **common,
            model_name=f"credit-it-{run}",
            group_id=f"training-{run}",
            labels_topic=self.topics["labels"],
            requests_topic=self.topics["requests"],
            drift_topic=self.topics["drift"],
            trained_topic=self.topics["trained"],
            promoted_topic=self.topics["promoted"],
            rejected_topic=self.topics["rejected"],
            api_keys_json=json.dumps([{"name": "ops-test", "role": "ops", "sha256": hash_key(OPS_KEY)}]),
            **training_overrides,
        )
        self.features: FastAPI = create_features(self.features_settings)
        self.training: FastAPI = create_training(self.training_settings)
        broker = make_broker(probe_settings(bootstrap))
        self.probe = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")
        self.received: list[Event[Any]] = []
        for name in ("updated", "requests", "trained", "promoted", "rejected"):
            self.probe.on_raw(self.topics[name], group_id=f"probe-{run}-{name}")(self._collect)
        self.bootstrap = bootstrap

    async def create_topics(self) -> None:
        for topic in self.topics.values():
            await create_topic(self.bootstrap, topic, partitions=1)

    async def _collect(self, raws: list[RawMessage]) -> None:
        self.received.extend(parse_event(raw.value or b"") for raw in raws)

    async def send(self, events: list[Event[Any]], topic: str) -> None:
        for event in events:
            await self.probe.publisher.publish(event, topic=self.topics[topic])

    def events(self, event_type: str, caused_by: Event[Any] | str | None = None) -> list[Event[Any]]:
        cause = str(caused_by.event_id) if isinstance(caused_by, Event) else caused_by
        return [
            e
            for e in self.received
            if e.event_type == event_type and (cause is None or e.causation_id == cause)
        ]
