"""Issue 19, item 3: the policy's three paths for an accuracy drop estimated before labels (a
DriftDetected of kind "performance"): alarm only, wait for the evidence (the labels since its change
point) while ops are told, and retrain once they have come. Each decision is recorded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from contracts.events import DriftDetected, DriftDetectedPayload, TrainingRequested
from tests.unit.test_training_handlers import SINCE_CHANGE, T0, features, labels_from, make

__all__ = ["features"]  # the module-scoped fixture, shared


def estimated_drop(at) -> DriftDetected:  # type: ignore[no-untyped-def]
    payload = DriftDetectedPayload(
        kind="performance", detector="CBPE", statistic=8.2, threshold=3.0, window_start=at,
        window_end=at + timedelta(minutes=5), window_size=500, model_name="credit", model_version="3",
        meaning="estimated accuracy 0.69 against 0.77 in the version's first window, before any label",
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def test_alarm_only_when_the_policy_does_not_retrain_on_estimates(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = SINCE_CHANGE.model_copy(update={"retrain_on_kinds": ("concept", "prediction")})
    service, bus = make(tmp_path, features, policy)
    change = T0 + timedelta(hours=2)
    await labels_from(service, change, 30, "new")  # even with labels there: the policy says no
    decision = await service.on_drift(estimated_drop(change))
    assert (decision.go, decision.reason) == (False, "kind")
    assert not bus.sent
    [recorded] = service.state.recent_decisions(10)
    assert recorded["reason"] == "kind" and recorded["kind"] == "performance"


async def test_an_estimated_drop_waits_for_the_labels_since_it_then_retrains_on_them(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    assert "performance" in SINCE_CHANGE.retrain_on_kinds  # the default policy's path
    change = T0 + timedelta(hours=2)
    await labels_from(service, T0, 50, "old")  # the old world's labels teach nothing about the new
    event = estimated_drop(change)
    decision = await service.on_drift(event)
    assert decision.reason == "waiting_for_labels" and not bus.sent  # no retrain on an estimate alone
    status = await service.retraining_status()
    assert status["waiting"]["event_id"] == str(event.event_id) and status["waiting"]["kind"] == "performance"
    await labels_from(service, change, 10, "new")  # the evidence comes
    [(request, _)] = bus.sent
    assert isinstance(request, TrainingRequested) and request.payload.window_start == change
    assert request.causation_id == str(event.event_id)
    reasons = [d["reason"] for d in service.state.recent_decisions(10)]
    assert reasons == ["go"]  # the waiting decision became the go, recorded with its request


async def test_without_a_change_point_an_estimate_never_retrains(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = SINCE_CHANGE.model_copy(update={"train_since_change": False})
    service, bus = make(tmp_path, features, policy)
    await labels_from(service, T0, 30, "any")  # labels since the last run: the old world's
    decision = await service.on_drift(estimated_drop(T0 + timedelta(hours=2)))
    assert (decision.go, decision.reason) == (False, "kind") and "change point" in decision.detail
    assert not bus.sent
