"""The ops view of the review queue (GET /tasks, GET /tasks/{prediction_id}): tasks by state, Label
Studio's reachability as the last sync saw it, unsent labels, and the latest tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from servicekit.outbox import SqliteOutbox
from services.annotation.adapters.store import AnnotationStore, TaskRow
from services.annotation.settings import AnnotationSettings
from services.annotation.sync import LabelStudioSync


class QueueView:
    def __init__(
        self,
        settings: AnnotationSettings,
        store: AnnotationStore,
        outbox: SqliteOutbox,
        sync: LabelStudioSync,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.sync = sync

    def overview(self) -> dict[str, Any]:
        status = self.sync.status
        return {
            "counts": self.store.counts(),
            "label_studio": {
                "url": self.settings.label_studio_url,
                "reachable": status.reachable,
                "unreachable_since": _iso(status.unreachable_since),
                "last_sync": _iso(status.last_sync),
                "last_error": status.last_error,
                "webhooks": "registered" if self.sync.webhook_key else "off (no key): polling only",
            },
            "labels_unsent": self.outbox.pending(),
            "recent": [view(row) for row in self.store.recent(self.settings.recent_tasks)],
        }

    def task(self, prediction_id: str) -> dict[str, Any] | None:
        row = self.store.get(prediction_id)
        return None if row is None else view(row)


def view(row: TaskRow) -> dict[str, Any]:
    return {
        "prediction_id": row.prediction_id,
        "entity_id": row.entity_id,
        "model_name": row.model_name,
        "model_version": row.model_version,
        "state": row.state,
        "reasons": row.reasons,
        "task_id": row.task_id,
        "outcome": row.outcome,
        "agreement": row.agreement,
        "annotators": row.annotators,
        "reasoning_wrong": row.reasoning_wrong,
        "comment": row.comment,
        "note": row.note,
        "chosen_at": _iso(row.chosen_at),
        "opened_at": _iso(row.opened_at),
    }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
