"""When a drift event asks for a retrain: pure decision rules over the policy and the service's state.

Rules, in order (the first that refuses names the reason): `retrain_on_drift` off, another model's
drift, retraining paused by ops, a drift kind the policy does not retrain on, too few labels since the
last run, the cool-down since the last drift retrain, the hourly limit.

>>> from datetime import UTC, datetime
>>> from contracts.events import DriftDetectedPayload
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> def drift(kind):
...     payload = DriftDetectedPayload(kind=kind, detector="ADWIN", statistic=1.0, window_start=now,
...                                    window_end=now, window_size=10, model_name="credit")
...     return DriftDetected.create(payload, producer="doc")
>>> state = RetrainState(model_name="credit", paused=False, new_labels=500)
>>> decide_retrain(drift("data"), state, GatePolicy(retrain_on_drift=True), now).reason
'kind'
>>> decide_retrain(drift("concept"), state, GatePolicy(retrain_on_drift=True), now).go
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.events import DriftDetected
from services.training.domain.policy import GatePolicy

REASONS = (
    "duplicate",
    "off",
    "other_model",
    "paused",
    "kind",
    "too_few_new_labels",
    "waiting_for_labels",
    "expired",
    "superseded",
    "cooldown",
    "hourly_limit",
    "go",
)


@dataclass(frozen=True)
class RetrainState:
    model_name: str
    paused: bool
    new_labels: int  # labelled entities received since the last training run finished
    last_retrain_at: datetime | None = None  # last retrain this policy decided
    retrains_last_hour: int = 0
    since_change: bool = False  # new_labels counts the labels since the drift's change point


@dataclass(frozen=True)
class Decision:
    go: bool
    reason: str  # one of REASONS (a metric label)
    detail: str = ""


def decide_retrain(event: DriftDetected, state: RetrainState, policy: GatePolicy, now: datetime) -> Decision:
    if not policy.retrain_on_drift:
        return Decision(False, "off", "retrain_on_drift is false")
    drift = event.payload
    if drift.model_name not in (None, state.model_name):
        return Decision(False, "other_model", f"drift of model {drift.model_name!r}")
    if state.paused:
        return Decision(False, "paused", "automatic retraining is paused by ops")
    if drift.kind not in policy.retrain_on_kinds:
        return Decision(False, "kind", f"{drift.kind} drift is not in retrain_on_kinds")
    if drift.kind == "performance" and not state.since_change:
        # An estimated drop has no labels of its own yet: only the labels since its change point can
        # teach the new world, so without train_since_change there is nothing to wait for.
        return Decision(False, "kind", "performance drift retrains only on the labels since its change point")
    return _limits(state, policy, now)


def _limits(state: RetrainState, policy: GatePolicy, now: datetime) -> Decision:
    if state.new_labels < policy.min_new_labels:
        since = "the change point" if state.since_change else "the last run"
        detail = f"{state.new_labels} new labels since {since}, the policy needs {policy.min_new_labels}"
        # Since a change point, labels keep coming: the retrain waits for them rather than giving up.
        return Decision(False, "waiting_for_labels" if state.since_change else "too_few_new_labels", detail)
    cooldown = timedelta(seconds=policy.retrain_cooldown_s)
    if state.last_retrain_at is not None and now - state.last_retrain_at < cooldown:
        return Decision(False, "cooldown", f"last drift retrain at {state.last_retrain_at.isoformat()}")
    if state.retrains_last_hour >= policy.max_retrains_per_hour:
        return Decision(False, "hourly_limit", f"{state.retrains_last_hour} drift retrains in the last hour")
    return Decision(True, "go", "retrain requested")


def change_point(event: DriftDetected, policy: GatePolicy) -> datetime | None:
    """Where a since-change retrain starts: the drift's window start, when the policy asks for it.

    For the CUSUM on the error stream that is its change-point estimate; for windowed detectors the
    start of the window that differed.
    """
    return event.payload.window_start if policy.train_since_change else None


def retrain_window(policy: GatePolicy, newest_label: datetime | None) -> tuple[datetime | None, None]:
    """The TrainingRequested window: the `drift_window_s` before the newest label, or all the data.

    >>> from datetime import UTC, datetime
    >>> from services.training.domain.policy import GatePolicy
    >>> retrain_window(GatePolicy(drift_window_s=3600), datetime(2026, 1, 1, 12, tzinfo=UTC))[0].hour
    11
    """
    if policy.drift_window_s is None or newest_label is None:
        return None, None
    return newest_label - timedelta(seconds=policy.drift_window_s), None
