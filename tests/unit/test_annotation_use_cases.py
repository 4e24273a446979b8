"""The annotation service's intake and sync against a fake Label Studio and an in-memory state: which
predictions become tasks (threshold, calibration, explanation, drift window, budget, expiry), and the
import outbox (Label Studio down, a deleted project, a crash between import and marking)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    ExplanationProduced,
)
from services.annotation.errors import LabelStudioUnavailable, ProjectGone
from services.annotation.intake import NO_EXPLANATION
from services.annotation.metrics import THRESHOLD_FALLBACKS
from tests.unit.annotation_world import (
    World,
    made,
    run,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


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
