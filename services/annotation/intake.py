"""The bus intake: predictions become chosen cases (`queued` rows), drift events open drift windows,
local explanations are remembered for the reviewer. Clients' labels are taken in by labels.py, beside
the rest of the rule of precedence; a client's label seen before its prediction is applied here (the
row is made `superseded`, never sent)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from contracts.events import DriftDetected, ExplanationProduced, PredictionMade
from contracts.registry import encode_event
from services.annotation.adapters.store import QUEUED, SUPERSEDED, AnnotationStore, TaskRow
from services.annotation.domain.policy import Case, SamplingPolicy, groups_of, reason_kind, reasons_for
from services.annotation.metrics import TASKS_CHOSEN, TASKS_SKIPPED, THRESHOLD_FALLBACKS, set_tasks_by_state
from services.annotation.ports import Thresholds

NO_EXPLANATION = "No explanation has been produced for this prediction yet."


class Intake:
    """Chooses cases from predictions.made, with what drift.detected and explanation.produced told it;
    `chosen` is set when a case was chosen (it wakes the Label Studio sync)."""

    def __init__(
        self,
        policy: SamplingPolicy,
        store: AnnotationStore,
        thresholds: Thresholds,
        chosen: asyncio.Event,
    ) -> None:
        self.policy = policy
        self.store = store
        self.thresholds = thresholds
        self.chosen = chosen

    async def on_predictions(self, events: list[PredictionMade]) -> None:
        """Choose cases for review (idempotent: a prediction with a row is left alone)."""
        thresholds: dict[tuple[str, str], float] = {}
        for event in events:
            key = (event.payload.model_name, event.payload.model_version)
            if key not in thresholds and not event.payload.shadow:
                found = await asyncio.to_thread(self.thresholds.threshold, *key)
                if found is None:
                    THRESHOLD_FALLBACKS.labels(key[0]).inc()
                thresholds[key] = self.policy.default_threshold if found is None else found
        chosen = 0
        with self.store.transaction() as conn:
            for event in events:
                made = event.payload
                if made.shadow or self.store.exists(conn, made.prediction_id):
                    continue
                predicted_at = event.occurred_at.timestamp()
                until = self.store.remembered.drift_until(conn, made.model_name)
                in_window = until is not None and until - self.policy.drift.window_s <= predicted_at <= until
                groups = groups_of(made.features, self.policy.fairness.age_band_edges)
                case = Case(
                    prediction_id=made.prediction_id,
                    p=made.probability if made.probability is not None else made.score,
                    threshold=thresholds[(made.model_name, made.model_version)],
                    shadow=made.shadow,
                    in_drift_window=in_window,
                    groups=groups,
                )
                reasons = reasons_for(self.policy, case, self.store.shares(conn))
                if not reasons:
                    continue
                if self.store.active_count(conn) >= self.policy.max_open_tasks:
                    for reason in reasons:
                        TASKS_SKIPPED.labels(reason_kind(reason)).inc()
                    continue
                client = self.store.remembered.client_label(made.prediction_id, conn)
                summary = self.store.remembered.explanation(conn, made.prediction_id)
                row = TaskRow(
                    prediction_id=made.prediction_id,
                    model_name=made.model_name,
                    model_version=made.model_version,
                    entity_id=made.entity_id,
                    reasons=reasons,
                    groups=groups,
                    state=SUPERSEDED if client is not None else QUEUED,
                    data=task_data(event, reasons, summary),
                    prediction=encode_event(event).decode(),
                    predicted_at=predicted_at,
                    chosen_at=time.time(),
                    import_started_at=None, project_id=None, task_id=None, opened_at=None, outcome=None,
                    agreement=None, annotators=[], reasoning_wrong=False, comment=None,
                    note="a client labelled this prediction before it was sent" if client else None,
                    updated_at=time.time(),
                )  # fmt: skip
                if self.store.insert(conn, row):
                    chosen += 1
                    for reason in reasons:
                        TASKS_CHOSEN.labels(reason_kind(reason)).inc()
        if chosen:
            set_tasks_by_state(self.store.counts())
            self.chosen.set()

    async def on_drift(self, events: list[DriftDetected]) -> None:
        with self.store.transaction() as conn:
            for event in events:
                if event.payload.model_name is None:
                    continue
                until = event.occurred_at.timestamp() + self.policy.drift.window_s
                self.store.remembered.open_drift_window(conn, event.payload.model_name, until)

    async def on_explanations(self, events: list[ExplanationProduced]) -> None:
        with self.store.transaction() as conn:
            for event in events:
                produced = event.payload
                if produced.scope != "local" or not produced.prediction_id:
                    continue
                self.store.remembered.put_explanation(conn, produced.prediction_id, produced.summary)
                row = conn.execute(
                    "SELECT data FROM tasks WHERE prediction_id = ? AND state = ? "
                    "AND import_started_at IS NULL",
                    (produced.prediction_id, QUEUED),
                ).fetchone()
                if row is not None:  # not sent yet: the reviewer will see it
                    data = parse_data(row[0]) | {"explanation": produced.summary}
                    self.store.update(produced.prediction_id, conn, data=data)


def task_data(event: PredictionMade, reasons: list[str], summary: str | None) -> dict[str, Any]:
    """What a reviewer sees: the decision, the score, the reasons, the features (PII-free by
    construction on predictions.made) and the plain-language explanation; never the raw record."""
    made = event.payload
    return {
        "prediction_id": made.prediction_id,
        "entity_id": made.entity_id,
        "model_name": made.model_name,
        "model_version": made.model_version,
        "decision": made.decision,
        "score": made.score,
        "probability": made.probability,
        "reasons": reasons,
        "features": dict(made.features),
        "explanation": summary or NO_EXPLANATION,
    }


def parse_data(text: str) -> dict[str, Any]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}
