"""The annotation service's labels and webhooks against a fake Label Studio and an in-memory state:
labels back as events (agreement, dispute, ground truth, the broker away), the rule of client
precedence in both orders, and webhook validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.common import KafkaCoordinates
from servicekit.deadletters import RawMessage
from services.annotation.errors import MalformedWebhook, ReplayedWebhook
from services.annotation.labels import label_event_id
from services.annotation.metrics import CLIENT_AGREEMENT
from tests.unit.annotation_world import (
    World,
    client_label,
    made,
    run,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_an_annotation_becomes_one_label_event_linked_to_its_prediction(world: World) -> None:
    prediction = made("p-1", 0.3)
    run(world.intake.on_predictions([prediction]))
    run(world.sync.sync_once())
    row = world.store.get("p-1")
    assert row is not None and row.task_id is not None
    world.ls.annotate(row.task_id, "bad", user=7)
    run(world.sync.sync_once())
    run(world.sync.sync_once())
    [label] = world.published()
    assert label.event_id == label_event_id("p-1") and label.causation_id == str(prediction.event_id)
    assert label.correlation_id == prediction.correlation_id
    body = label.payload
    assert (body.source, body.label, body.prediction_id, body.entity_id) == (
        "annotation",
        "bad",
        "p-1",
        "app-p-1",
    )
    assert body.task_id == str(row.task_id) and body.agreement == 1.0 and body.dataset == "loan_applications"
    assert body.annotators and body.annotators[0].startswith("annotator-")
    assert body.annotators[0] != "annotator-7"
    assert body.event_time == datetime(2026, 3, 1, 12, tzinfo=UTC)
    done = world.store.get("p-1")
    assert (
        done is not None
        and done.state == "labelled"
        and done.reasoning_wrong
        and done.comment == "ignores the debt"
    )
    assert "ignores the debt" not in label.model_dump_json()  # the comment stays in the service


def test_a_label_survives_the_broker_being_away(world: World) -> None:
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    world.ls.annotate(world.store.get("p-1").task_id or 0, "good")  # type: ignore[union-attr]
    world.bus_down = True
    run(world.sync.sync_once())
    assert world.published() == [] and world.outbox.pending() == 1
    world.bus_down = False
    run(world.labels.flush_quietly())
    run(world.labels.flush_quietly())
    assert [e.event_id for e in world.published()] == [label_event_id("p-1")]


def test_disagreement_is_disputed_until_ground_truth_settles_it(tmp_path: Path) -> None:
    world = World(tmp_path, {"annotations_per_task": 2})
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    task_id = world.store.get("p-1").task_id or 0  # type: ignore[union-attr]
    world.ls.annotate(task_id, "bad", user=7)
    run(world.sync.sync_once())
    assert world.store.get("p-1").state == "open"  # type: ignore[union-attr]
    world.ls.annotate(task_id, "good", user=8)
    run(world.sync.sync_once())
    assert world.store.get("p-1").state == "disputed" and world.published() == []  # type: ignore[union-attr]
    world.ls.annotations[task_id][1]["ground_truth"] = True  # a reviewer settles it in Label Studio
    run(world.sync.sync_once())
    [label] = world.published()
    assert (
        label.payload.label == "good"
        and label.payload.agreement == 0.5
        and len(label.payload.annotators) == 1
    )


def test_a_client_label_first_means_no_task(world: World) -> None:
    run(world.labels.on_client_labels([client_label("p-1")]))
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    row = world.store.get("p-1")
    assert (
        row is not None and row.state == "superseded" and row.task_id is None and world.ls.tasks_by_id == {}
    )


def test_a_client_label_while_open_supersedes_the_annotation(world: World) -> None:
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    run(world.labels.on_client_labels([client_label("p-1", "good")]))
    world.ls.annotate(world.store.get("p-1").task_id or 0, "bad")  # type: ignore[union-attr]
    run(world.sync.sync_once())
    row = world.store.get("p-1")
    assert row is not None and row.state == "superseded" and row.outcome == "bad" and world.published() == []
    assert CLIENT_AGREEMENT.labels("false")._value.get() >= 1  # the annotators disagreed with the client


def test_a_client_label_during_the_import_call_keeps_the_task_superseded(world: World) -> None:
    run(world.intake.on_predictions([made("p-1", 0.3)]))

    async def client_answers() -> None:
        await world.labels.on_client_labels([client_label("p-1")])

    world.ls.during_import = client_answers
    run(world.sync.sync_once())
    row = world.store.get("p-1")
    assert row is not None and row.state == "superseded" and row.task_id is not None  # not reopened
    assert world.store.counts()["open"] == 0


def test_group_shares_count_the_tasks_sent_even_when_clients_supersede_them(world: World) -> None:
    run(world.intake.on_predictions([made(f"p-{i}", 0.3) for i in range(10)]))
    run(world.labels.on_client_labels([client_label(f"p-{i}") for i in range(9)]))  # 9 superseded
    with world.store.transaction() as conn:
        shares = world.store.shares(conn)
    assert shares.total == 10 and shares.share("sex", "female") == 1.0  # never above 1


def test_a_client_label_after_the_annotation_but_before_publication_withdraws_it(world: World) -> None:
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    world.ls.annotate(world.store.get("p-1").task_id or 0, "bad")  # type: ignore[union-attr]
    world.bus_down = True
    run(world.sync.sync_once())
    assert world.store.get("p-1").state == "labelled" and world.outbox.pending() == 1  # type: ignore[union-attr]
    run(world.labels.on_client_labels([client_label("p-1", "good")]))
    world.bus_down = False
    run(world.labels.flush_quietly())
    assert world.published() == [] and world.store.get("p-1").state == "superseded"  # type: ignore[union-attr]


def test_our_own_annotation_labels_coming_back_are_ignored(world: World) -> None:
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    world.ls.annotate(world.store.get("p-1").task_id or 0, "bad")  # type: ignore[union-attr]
    run(world.sync.sync_once())
    run(world.labels.on_client_labels(world.published()))
    assert world.store.get("p-1").state == "labelled"  # type: ignore[union-attr]


def raw(body: bytes, offset: int) -> RawMessage:
    return RawMessage(
        KafkaCoordinates(topic="annotation.webhooks", partition=0, offset=offset), None, body, 0
    )


def hook(annotation: dict[str, Any]) -> bytes:
    return json.dumps({"action": "ANNOTATION_CREATED", "annotation": annotation}).encode()


def test_webhooks_are_checked_then_replays_and_strangers_are_dead_lettered(tmp_path: Path) -> None:
    world = World(tmp_path, webhook_key="mlops_hook")
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    project = world.store.get("p-1").project_id  # type: ignore[union-attr]
    assert world.ls.webhooks == [
        (project, "http://127.0.0.1:8999/label-studio/webhook", {"X-API-Key": "mlops_hook"})
    ]
    task_id = world.store.get("p-1").task_id or 0  # type: ignore[union-attr]
    annotation = world.ls.annotate(task_id, "good")
    good = hook(annotation)
    with pytest.raises(MalformedWebhook) as unknown_task:
        run(world.webhooks.check(hook(annotation | {"task": 99999})))
    assert unknown_task.value.code == "unknown_task"
    with pytest.raises(MalformedWebhook) as unknown_annotation:
        run(world.webhooks.check(hook(annotation | {"id": 4242})))
    assert unknown_annotation.value.code == "unknown_annotation"
    assert run(world.webhooks.check(good)).annotation_id == annotation["id"]
    run(world.webhooks.on_records([raw(good, 1)], world.dead_letter))
    assert [e.payload.prediction_id for e in world.published()] == ["p-1"] and world.letters == []
    run(world.webhooks.on_records([raw(good, 1)], world.dead_letter))  # Kafka redelivered the same record
    assert world.letters == []
    with pytest.raises(ReplayedWebhook):
        run(world.webhooks.check(good))
    bad = [raw(b"{", 3), raw(hook(annotation | {"task": 99999}), 4), raw(good, 5)]
    run(world.webhooks.on_records(bad, world.dead_letter))
    assert [code for code, _ in world.letters] == ["not_json", "unknown_task", "replayed"]
    assert len(world.published()) == 1


def test_the_webhook_body_is_not_trusted_for_content(tmp_path: Path) -> None:
    world = World(tmp_path, webhook_key="mlops_hook")
    run(world.intake.on_predictions([made("p-1", 0.3)]))
    run(world.sync.sync_once())
    task_id = world.store.get("p-1").task_id or 0  # type: ignore[union-attr]
    annotation = world.ls.annotate(task_id, "good")
    forged = hook(annotation | {"result": [{"from_name": "outcome", "value": {"choices": ["bad"]}}]})
    run(world.webhooks.on_records([raw(forged, 1)], world.dead_letter))
    [label] = world.published()
    assert label.payload.label == "good"  # what Label Studio says, not what the body says
