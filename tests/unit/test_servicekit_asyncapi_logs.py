"""The AsyncAPI export documents services' channels with contract payloads; logs are JSON with context."""

from __future__ import annotations

import json
import logging

from contracts.common import KafkaCoordinates
from contracts.events import ModelPromoted, TrainingRequested
from contracts.topics import TOPICS, TRAINING_REQUESTED
from infra.asyncapi import build_document
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from servicekit.logs import JsonFormatter, log_context
from tests.support import probe_settings


def test_asyncapi_documents_a_service_and_every_topic() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")

    @subs.on_event(TRAINING_REQUESTED, TrainingRequested)
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None: ...

    broker.publisher(ModelPromoted.topic, schema=ModelPromoted, title="probe:model.promoted:send")

    @subs.on_raw("drift.detected")
    async def raw(raws: list[object]) -> None: ...

    doc = build_document([("probe", broker, subs)])
    assert doc["asyncapi"] == "3.0.0"
    assert doc["operations"]["probe:training.requested"]["action"] == "receive"
    assert doc["operations"]["probe:model.promoted:send"]["action"] == "send"
    raw_payload = doc["components"]["messages"]["probe:drift.detected:SubscribeMessage"]["payload"]
    assert raw_payload == {"$ref": "#/components/schemas/DriftDetected"}  # from the topic's contract
    received = doc["components"]["messages"]["probe:training.requested:SubscribeMessage"]
    assert received["payload"] == {"$ref": "#/components/schemas/TrainingRequested"}
    assert "TrainingRequestedPayload" in doc["components"]["schemas"]
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {spec.name for spec in TOPICS}  # every topic is documented, used or not
    json.dumps(doc)  # serialisable


def test_json_logs_carry_context_and_extra_fields() -> None:
    formatter = JsonFormatter("probe")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "handled %s", ("it",), None)
    record.model_version = "7"
    with log_context(event_id="e-1"):
        line = json.loads(formatter.format(record))
    assert line["msg"] == "handled it" and line["service"] == "probe"
    assert line["event_id"] == "e-1" and line["model_version"] == "7"
    assert "event_id" not in json.loads(formatter.format(record))  # context ends with the block
