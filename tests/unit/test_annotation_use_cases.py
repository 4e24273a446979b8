"""The annotation service's use cases (intake, sync, labels, webhooks, the queue view) against a fake
Label Studio and an in-memory state: the import outbox (Label Studio down, a crash between import and
marking), labels back as events (agreement, dispute, ground truth), the rule of client precedence in
both orders, and webhook validation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    ExplanationProduced,
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
    PredictionMadePayload,
)
from servicekit.deadletters import RawMessage
from servicekit.outbox import SqliteOutbox
from services.annotation.adapters.store import AnnotationStore
from services.annotation.domain.policy import SamplingPolicy
from services.annotation.errors import LabelStudioUnavailable, MalformedWebhook, ProjectGone, ReplayedWebhook
from services.annotation.intake import NO_EXPLANATION, Intake
from services.annotation.labels import Labels, label_event_id
from services.annotation.metrics import CLIENT_AGREEMENT, THRESHOLD_FALLBACKS
from services.annotation.settings import AnnotationSettings
from services.annotation.sync import LabelStudioSync
from services.annotation.views import QueueView
from services.annotation.webhooks import Webhooks

KEY = bytes(range(32))
QUIET = {"audit": {"share": 0}, "fairness": {"share": 0}, "drift": {"share": 0}}


class FakeLabelStudio:
    """Projects, tasks and annotations in memory; `down` makes every call fail as an outage would."""

    def __init__(self) -> None:
        self.down = False
        self.made_projects = 0
        self.during_import: Any = None  # a coroutine run while the import call is in flight
        self.crash_after_import = False
        self.projects: dict[str, int] = {}
        self.tasks_by_id: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.webhooks: list[tuple[int, str, dict[str, str]]] = []
        self.imports = 0
        self.returns_ids = True
        self.drops_imports = False

    def _up(self) -> None:
        if self.down:
            raise LabelStudioUnavailable("Label Studio unreachable: ConnectError")

    async def ping(self) -> bool:
        return not self.down

    async def ensure_project(self, title: str, maximum_annotations: int) -> int:
        self._up()
        self.made_projects += title not in self.projects
        return self.projects.setdefault(title, 10 * (self.made_projects + 1))

    async def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> None:
        self._up()
        if (project_id, url, headers) not in self.webhooks:
            self.webhooks.append((project_id, url, headers))

    async def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> list[int] | None:
        self._up()
        if project_id not in self.projects.values():
            raise ProjectGone(f"no project {project_id}")
        self.imports += 1
        ids = []
        for d in data:
            if self.drops_imports:
                continue
            task_id = 100 + len(self.tasks_by_id)
            self.tasks_by_id[task_id] = {
                "id": task_id,
                "project": project_id,
                "data": json.loads(json.dumps(d)),
            }
            ids.append(task_id)
        if self.during_import is not None:
            await self.during_import()
        if self.crash_after_import:
            self.crash_after_import = False
            raise LabelStudioUnavailable("the answer was lost")
        return ids if self.returns_ids else None

    async def tasks(self, project_id: int) -> list[dict[str, Any]]:
        self._up()
        return [
            t | {"total_annotations": len(self.annotations.get(t["id"], [])), "cancelled_annotations": 0}
            for t in self.tasks_by_id.values()
            if t["project"] == project_id
        ]

    async def task_annotations(self, task_id: int) -> list[dict[str, Any]] | None:
        self._up()
        return list(self.annotations.get(task_id, [])) if task_id in self.tasks_by_id else None

    async def annotation(self, annotation_id: int) -> dict[str, Any] | None:
        self._up()
        for found in self.annotations.values():
            for a in found:
                if a["id"] == annotation_id:
                    return a
        return None

    def annotate(self, task_id: int, outcome: str, user: int = 7, **extra: Any) -> dict[str, Any]:
        annotation = {
            "id": 1000 + sum(len(v) for v in self.annotations.values()),
            "task": task_id,
            "completed_by": user,
            "updated_at": "2026-03-01T12:00:00.000000Z",
            "was_cancelled": False,
            "ground_truth": False,
            "result": [
                {"from_name": "outcome", "type": "choices", "value": {"choices": [outcome]}},
                {"from_name": "reasoning", "type": "choices", "value": {"choices": ["reasoning wrong"]}},
                {"from_name": "comment", "type": "textarea", "value": {"text": ["ignores the debt"]}},
            ],
        } | extra
        self.annotations.setdefault(task_id, []).append(annotation)
        return annotation


class FakeThresholds:
    def __init__(self, known: dict[tuple[str, str], float]) -> None:
        self.known = known

    def threshold(self, model_name: str, version: str) -> float | None:
        return self.known.get((model_name, version))


class World:
    def __init__(
        self, tmp: Path, policy: dict[str, Any] | None = None, webhook_key: str | None = None
    ) -> None:
        self.settings = AnnotationSettings(state_dir=tmp, http_port=8999)
        self.store = AnnotationStore(None)
        self.sent: list[tuple[Event[Any], str]] = []
        self.bus_down = False
        self.outbox = SqliteOutbox(self.store.db, self._publish)
        self.ls = FakeLabelStudio()
        sampling = SamplingPolicy.from_mapping(QUIET | (policy or {}))
        self.labels = Labels(self.settings, sampling, self.store, self.outbox, KEY)
        self.sync = LabelStudioSync(self.settings, sampling, self.store, self.ls, self.labels, webhook_key)
        thresholds = FakeThresholds({("credit-risk", "3"): 0.3})
        self.intake = Intake(sampling, self.store, thresholds, chosen=self.sync.wake)
        self.webhooks = Webhooks(self.store, self.ls, self.labels, self.settings.max_webhook_bytes)
        self.queue = QueueView(self.settings, self.store, self.outbox, self.sync)
        self.letters: list[tuple[str, str]] = []

    async def _publish(self, event: Event[Any], topic: str) -> None:
        if self.bus_down:
            raise ConnectionError("broker away")
        self.sent.append((event, topic))

    async def dead_letter(self, raw: RawMessage, code: str, message: str) -> None:
        self.letters.append((code, message))

    def published(self) -> list[LabelObserved]:
        return [e for e, _ in self.sent if isinstance(e, LabelObserved)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def made(pid: str, score: float, version: str = "3", **kw: Any) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=pid, entity_id=f"app-{pid}", model_name="credit-risk", model_version=version,
        score=score, decision="reject" if score >= 0.3 else "approve", latency_ms=1.0,
        features={"age_in_years": 23, "personal_status_and_sex": "female : single", "credit_amount": 2500},
        **kw,
    )  # fmt: skip
    return PredictionMade.create(payload, "serving")


def client_label(pid: str, label: str = "good") -> LabelObserved:
    payload = LabelObservedPayload(
        dataset="loan_applications", entity_id=f"app-{pid}", label=label, event_time=datetime.now(UTC),
        prediction_id=pid,
    )  # fmt: skip
    return LabelObserved.create(payload, "serving")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_near_the_versions_threshold_becomes_one_task_with_features_and_no_raw_record(world: World) -> None:
    near, far, shadow = made("p-near", 0.32), made("p-far", 0.9), made("p-shadow", 0.3, shadow=True)
    run(world.intake.on_predictions([near, far, shadow, near]))  # a redelivery changes nothing
    assert world.store.counts()["queued"] == 1 and world.store.get("p-far") is None
    run(world.sync.sync_once())
    row = world.store.get("p-near")
    assert row is not None and row.state == "open" and row.reasons == ["uncertain"]
    task = world.ls.tasks_by_id[row.task_id or 0]
    assert task["data"]["prediction_id"] == "p-near" and task["data"]["features"]["credit_amount"] == 2500
    assert task["data"]["explanation"] == NO_EXPLANATION and task["data"]["reasons"] == ["uncertain"]
    assert set(task["data"]) == {
        "prediction_id", "entity_id", "model_name", "model_version", "decision", "score", "probability",
        "reasons", "features", "explanation",
    }  # fmt: skip
    run(world.sync.sync_once())
    assert len(world.ls.tasks_by_id) == 1  # synced again: still one task


def test_the_calibrated_probability_counts_and_an_unreadable_card_falls_back_to_the_default(
    world: World,
) -> None:
    before = THRESHOLD_FALLBACKS.labels("credit-risk")._value.get()
    run(world.intake.on_predictions([made("p-cal", 0.9, probability=0.31)]))
    run(world.intake.on_predictions([made("p-v9", 0.52, version="9")]))  # no card: threshold 0.5
    assert world.store.get("p-cal") is not None and world.store.get("p-v9") is not None
    assert THRESHOLD_FALLBACKS.labels("credit-risk")._value.get() == before + 1


def test_an_explanation_seen_first_is_shown_to_the_reviewer(world: World) -> None:
    from contracts.events import ExplanationProducedPayload

    explained = ExplanationProduced.create(
        ExplanationProducedPayload(
            model_name="credit-risk", model_version="3", scope="local", prediction_id="p-x",
            summary="Declined mostly because of the loan's duration.", methods=["shap"], fidelity={},
        ),
        "explain",
    )  # fmt: skip
    run(world.intake.on_explanations([explained]))
    run(world.intake.on_predictions([made("p-x", 0.3)]))
    row = world.store.get("p-x")
    assert row is not None and row.data["explanation"] == "Declined mostly because of the loan's duration."


def test_a_drift_window_samples_that_models_predictions(tmp_path: Path) -> None:
    world = World(tmp_path, {"drift": {"share": 1.0, "window_s": 3600}})
    now = datetime.now(UTC)
    drift = DriftDetected.create(
        DriftDetectedPayload(
            kind="data", detector="ADWIN", statistic=1.0, window_start=now, window_end=now, window_size=10,
            model_name="credit-risk",
        ),
        "drift",
    )  # fmt: skip
    run(world.intake.on_predictions([made("p-before", 0.9)]))
    run(world.intake.on_drift([drift]))
    run(world.intake.on_predictions([made("p-after", 0.9)]))
    assert world.store.get("p-before") is None
    row = world.store.get("p-after")
    assert row is not None and row.reasons == ["drift"]


def test_the_budget_caps_open_tasks(tmp_path: Path) -> None:
    world = World(tmp_path, {"max_open_tasks": 2})
    run(world.intake.on_predictions([made(f"p-{i}", 0.3) for i in range(5)]))
    assert world.store.counts()["queued"] == 2


def test_a_task_left_unanswered_expires_frees_the_budget_and_a_late_answer_still_counts(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, {"max_open_tasks": 1, "task_ttl_s": 3600})
    run(world.intake.on_predictions([made("p-old", 0.3)]))
    run(world.sync.sync_once())
    run(world.intake.on_predictions([made("p-new", 0.3)]))
    assert world.store.get("p-new") is None  # the budget is full
    old = world.store.get("p-old")
    assert old is not None and old.state == "open" and old.task_id is not None
    world.store.update("p-old", opened_at=old.opened_at - 3601)  # opened more than task_ttl_s ago
    with world.store.transaction() as conn:  # an old dispute expires too
        world.store.insert(conn, dataclasses.replace(old, prediction_id="p-d"))
    world.store.update("p-d", state="disputed", opened_at=old.opened_at - 7200)
    run(world.sync.sync_once())
    assert world.store.counts()["expired"] == 2
    assert world.store.awaiting_answers("credit-risk", time.time() - 3600) == []  # no longer read back
    run(world.intake.on_predictions([made("p-new", 0.3)]))
    assert world.store.get("p-new") is not None  # the budget has room again
    world.ls.annotate(old.task_id, "good")
    run(world.labels.settle(world.store.get("p-old"), world.ls.annotations[old.task_id]))  # type: ignore[arg-type]
    assert world.store.get("p-old").state == "labelled" and len(world.published()) == 1  # type: ignore[union-attr]


def test_label_studio_down_keeps_tasks_queued_then_each_becomes_exactly_one_task(world: World) -> None:
    world.ls.down = True
    with pytest.raises(LabelStudioUnavailable):
        run(world.sync.sync_once())  # no task yet: its health is still checked
    assert world.queue.overview()["label_studio"]["reachable"] is False
    run(world.intake.on_predictions([made(f"p-{i}", 0.3) for i in range(3)]))
    with pytest.raises(LabelStudioUnavailable):
        run(world.sync.sync_once())
    overview = world.queue.overview()
    assert overview["counts"]["queued"] == 3 and overview["label_studio"]["reachable"] is False
    assert overview["label_studio"]["unreachable_since"] is not None
    run(world.intake.on_predictions([made("p-3", 0.31)]))
    world.ls.down = False
    run(world.sync.sync_once())
    assert world.store.counts()["open"] == 4 and world.queue.overview()["label_studio"]["reachable"] is True
    ids = sorted(t["data"]["prediction_id"] for t in world.ls.tasks_by_id.values())
    assert ids == ["p-0", "p-1", "p-2", "p-3"]


def test_a_project_deleted_in_label_studio_is_made_again_and_the_queue_goes_there(world: World) -> None:
    run(world.intake.on_predictions([made("p-a", 0.3)]))
    run(world.sync.sync_once())
    first = world.store.get("p-a").project_id  # type: ignore[union-attr]
    world.ls.projects.clear()  # an admin deleted "Review: credit-risk"
    run(world.intake.on_predictions([made("p-b", 0.3)]))
    with pytest.raises(ProjectGone):
        run(world.sync.sync_once())
    run(world.sync.sync_once())
    row = world.store.get("p-b")
    assert row is not None and row.state == "open" and row.project_id not in (None, first)
    assert world.ls.made_projects == 2


def test_a_crash_between_import_and_marking_makes_no_duplicate(world: World) -> None:
    run(world.intake.on_predictions([made("p-a", 0.3), made("p-b", 0.31)]))
    world.ls.crash_after_import = True  # Label Studio took the tasks, the service never saw the answer
    with pytest.raises(LabelStudioUnavailable):
        run(world.sync.sync_once())
    assert world.store.counts()["queued"] == 2 and len(world.ls.tasks_by_id) == 2
    run(world.sync.sync_once())  # reconciled by data.prediction_id, not imported again
    assert world.store.counts()["open"] == 2 and len(world.ls.tasks_by_id) == 2 and world.ls.imports == 1


def test_without_task_ids_in_the_answer_tasks_are_found_by_prediction_id(world: World) -> None:
    world.ls.returns_ids = False
    run(world.intake.on_predictions([made("p-a", 0.3), made("p-b", 0.31)]))
    run(world.sync.sync_once())
    rows = [world.store.get(p) for p in ("p-a", "p-b")]
    assert [(r.state, world.ls.tasks_by_id[r.task_id or 0]["data"]["prediction_id"]) for r in rows if r] == [
        ("open", "p-a"),
        ("open", "p-b"),
    ]
    world.ls.drops_imports = True  # an import that made nothing: an error, not an endless loop
    run(world.intake.on_predictions([made("p-c", 0.3)]))
    with pytest.raises(LabelStudioUnavailable):
        run(world.sync.sync_once())
    assert world.store.get("p-c").state == "queued"  # type: ignore[union-attr]


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
