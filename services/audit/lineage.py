"""The lineage of one prediction, in one call:

prediction -> model version -> its promotion (gate evidence) -> the training run (window, dataset)
-> what started the training (a TrainingRequested, and the DriftDetected behind it, if any); and
downstream, the labels recorded for the prediction: who observed each (a client, or annotators through
an annotation task, named by the task id and their pseudonyms) and whether its envelope names the
prediction's event as its cause.

Links are followed by ids the events carry: model name and version, run id, causation ids, the
request's `trigger_event_id`, and the correlation id as a fallback.
"""

from __future__ import annotations

import json
from typing import Any

from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import SqlAuditStore
from services.audit.errors import NotFound
from services.audit.views import row_view

MAX_HOPS = 10
MAX_LABELS = 20
TRIGGERS = ("TrainingRequested", "DriftDetected")


def lineage(store: SqlAuditStore, prediction_id: str) -> dict[str, Any]:
    prediction = store.first(event_type="PredictionMade", prediction_id=prediction_id)
    if prediction is None:
        raise NotFound(f"no prediction {prediction_id!r} is recorded in the audit trail")
    name, version = prediction["model_name"], prediction["model_version"]
    promoted = _before(
        store, prediction["seq"], event_type="ModelPromoted", model_name=name, model_version=version
    )
    run_id = _payload(promoted).get("run_id")
    trained = _before(
        store,
        promoted["seq"] if promoted else prediction["seq"],
        event_type="ModelTrained",
        model_name=name,
        model_version=version,
        **({"run_id": run_id} if run_id else {}),
    )
    request, drift = _triggers(store, trained)
    trained_payload = _payload(trained)
    steps = {"promotion": promoted, "training_run": trained, "training_request": request, "drift": drift}
    return {
        "prediction_id": prediction_id,
        "prediction": row_view(prediction),
        "model": {"name": name, "version": version},
        "promotion": row_view(promoted) if promoted else None,
        "gate_evidence": _payload(promoted).get("evidence"),
        "training_run": row_view(trained) if trained else None,
        "training_window": {
            "start": trained_payload.get("window_start"),
            "end": trained_payload.get("window_end"),
        },
        "dataset": {
            "version": trained_payload.get("dataset_version"),
            "sha256": trained_payload.get("dataset_sha256"),
        },
        "training_request": row_view(request) if request else None,
        "drift": row_view(drift) if drift else None,
        "labels": _labels(store, prediction),
        "missing": [step for step, row in steps.items() if row is None],
    }


def _labels(store: SqlAuditStore, prediction: dict[str, Any]) -> list[dict[str, Any]]:
    query = EventQuery(
        event_type="LabelObserved", prediction_id=prediction["prediction_id"], limit=MAX_LABELS
    )
    labels = []
    for row in store.events(query):
        payload = _payload(row)
        labels.append({
            "event": row_view(row),
            "source": payload.get("source", "client"),
            "task_id": payload.get("task_id"),
            "annotators": payload.get("annotators", []),
            "agreement": payload.get("agreement"),
            "caused_by_prediction": row.get("causation_id") == prediction["event_id"],
        })  # fmt: skip
    return labels


def _before(store: SqlAuditStore, seq: int, **filters: Any) -> dict[str, Any] | None:
    """The latest matching event recorded before `seq`, else the earliest one after it."""
    return store.last(before=seq, **filters) or store.first(**filters)


def _triggers(store: SqlAuditStore, trained: dict[str, Any] | None) -> tuple[dict[str, Any] | None, ...]:
    found: dict[str, dict[str, Any]] = {}
    current = trained
    for _ in range(MAX_HOPS):  # walk the causation ids upwards
        parent_id = _parent_id(current) if current else None
        current = store.first(event_id=parent_id) if parent_id else None
        if current is None:
            break
        if current["event_type"] in TRIGGERS:
            found.setdefault(current["event_type"], current)
    if trained is not None:  # fallback: the same flow, by correlation id
        for event_type in TRIGGERS:
            if event_type not in found:
                row = store.first(event_type=event_type, correlation_id=trained["correlation_id"])
                if row is not None:
                    found[event_type] = row
    return found.get("TrainingRequested"), found.get("DriftDetected")


def _parent_id(row: dict[str, Any]) -> str | None:
    trigger = _payload(row).get("trigger_event_id") if row["event_type"] == "TrainingRequested" else None
    parent = row.get("causation_id") or trigger
    return str(parent) if parent else None


def _payload(row: dict[str, Any] | None) -> dict[str, Any]:
    if not row or not row.get("body"):
        return {}
    payload = json.loads(row["body"]).get("payload")
    return payload if isinstance(payload, dict) else {}
