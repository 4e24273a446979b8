"""The envelope, the catalogue and the topics: round trips, causality, keys, forward compatibility."""

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.events import (
    ALL_EVENTS,
    PredictionMade,
    PredictionMadePayload,
    RecordRejected,
    TrainingRequested,
    TrainingRequestedPayload,
)
from contracts.registry import EVENT_TYPES, encode_event, parse_event
from contracts.samples import sample_events, sample_payloads
from contracts.topics import RECORDS_RAW, TOPICS, topic_names

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
SAMPLES = {type(event).type_name(): event for event in sample_events()}


def test_every_event_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES) == {cls.type_name() for cls in ALL_EVENTS}


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_round_trip(event_type: str) -> None:
    event = SAMPLES[event_type]
    wire = encode_event(event)
    parsed = parse_event(wire)
    assert type(parsed) is type(event)
    assert parsed == event
    assert encode_event(parsed) == wire


def test_encoding_is_compact_utf8_json() -> None:
    payload = sample_payloads()[PredictionMade].model_copy(update={"decision": "refusé"})
    wire = encode_event(PredictionMade.create(payload, "serving"))
    assert b", " not in wire and b": " not in wire
    assert "refusé".encode() in wire


def test_root_event_starts_its_own_flow() -> None:
    root = TrainingRequested.create(
        TrainingRequestedPayload(model_name="m", reason="manual", requested_by="ops"), "ops"
    )
    assert root.correlation_id == str(root.event_id)
    assert root.causation_id is None
    assert root.event_type == "TrainingRequested" and root.schema_version == 1
    assert root.occurred_at.utcoffset() is not None


def test_create_links_child_to_parent() -> None:
    parent = SAMPLES["DriftDetected"]
    payload = TrainingRequestedPayload(model_name="fraud", reason="drift", requested_by="training")
    child = TrainingRequested.create(payload, "training", caused_by=parent)
    assert child.correlation_id == parent.correlation_id
    assert child.causation_id == str(parent.event_id)
    assert child.event_id != parent.event_id


def test_explicit_correlation_id_wins() -> None:
    payload = TrainingRequestedPayload(model_name="m", reason="manual", requested_by="ops")
    assert TrainingRequested.create(payload, "ops", correlation_id="req-7").correlation_id == "req-7"
    child = TrainingRequested.create(
        payload, "ops", caused_by=SAMPLES["DriftDetected"], correlation_id="req-8"
    )
    assert child.correlation_id == "req-8"


def test_create_refuses_a_payload_of_another_event() -> None:
    with pytest.raises(ValidationError):
        PredictionMade.create(sample_payloads()[TrainingRequested], "serving")


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        SAMPLES["PredictionMade"].producer = "someone-else"


def test_non_finite_numbers_are_refused_at_construction() -> None:
    with pytest.raises(ValidationError):
        PredictionMadePayload.model_validate({**_payload_dict("PredictionMade"), "score": float("nan")})


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("RecordCleaned", b"customer-1"),
        ("FeaturesUpdated", b"customer_stats"),
        ("PredictionMade", b"customer-1"),
        ("ModelPromoted", b"fraud"),
        ("DeadLettered", None),
        ("AuditCheckpointed", None),
    ],
)
def test_partition_key(event_type: str, expected: bytes | None) -> None:
    assert SAMPLES[event_type].key() == expected


def test_partition_key_falls_back_then_goes_absent() -> None:
    anonymous = PredictionMadePayload.model_validate({**_payload_dict("PredictionMade"), "entity_id": None})
    assert PredictionMade.create(anonymous, "serving").key() == b"pred-1"
    rejected = SAMPLES["RecordRejected"]
    unkeyed = rejected.model_copy(update={"payload": rejected.payload.model_copy(update={"entity_id": None})})
    assert isinstance(unkeyed, RecordRejected) and unkeyed.key() is None


def test_unknown_fields_are_ignored() -> None:
    event = SAMPLES["PredictionMade"]
    wire = json.loads(encode_event(event))
    wire["added_by_a_newer_producer"] = {"anything": 1}
    wire["payload"]["new_optional_field"] = "x"
    wire["payload"]["source"] = {"topic": "t", "partition": 0, "offset": 1, "leader_epoch": 3}
    parsed = parse_event(wire)
    assert parsed == event
    assert "new_optional_field" not in parsed.payload.model_dump()


def test_every_event_names_a_declared_topic_with_matching_key() -> None:
    specs = {spec.name: spec for spec in TOPICS}
    for cls in ALL_EVENTS:
        spec = specs[cls.topic]
        assert spec.event_types == (cls.type_name(),)
        assert spec.key == (", else ".join(cls.key_fields) or "none")
    carried = {t for spec in TOPICS for t in spec.event_types}
    assert carried == set(EVENT_TYPES)


def test_topics() -> None:
    names = topic_names()
    raw_topics = {spec.name for spec in TOPICS if not spec.event_types}
    assert raw_topics == {RECORDS_RAW, "annotation.webhooks"}  # not enveloped: plain JSON bodies
    assert len(names) == len(set(names)) == len(ALL_EVENTS) + len(raw_topics)
    raw = next(spec for spec in TOPICS if spec.name == RECORDS_RAW)
    assert raw.event_types == () and raw.record_topic
    record_topics = {spec.name for spec in TOPICS if spec.record_topic}
    assert record_topics == {
        "records.raw",
        "records.clean",
        "records.rejected",
        "features.updated",
        "labels.observed",
        "predictions.made",
    }


def test_contracts_import_only_pydantic_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", "contracts"}
    for path in CONTRACTS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


def _payload_dict(event_type: str) -> dict[str, Any]:
    payload: dict[str, Any] = SAMPLES[event_type].payload.model_dump()
    return payload
