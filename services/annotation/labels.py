"""Labels back out: a task's annotations settled, its label published, and a client's label first.

The rule of precedence: **an annotation never overrides a client's label.** A client's label for a
prediction (a `LabelObserved` with source "client" on labels.observed) seen before the task is made,
while it is open or disputed, or after its annotation settled it but before the label was published,
makes the task `superseded`: its annotation is not published (an unsent event is withdrawn from the
outbox in the same transaction), and whether the annotators agreed with the client is counted
(`annotation_client_agreement_total`, a measure of annotator quality). A label already published
stays on the log; training ranks a client's label above any annotation of the same entity. (The
"before the task is made" case is applied where cases are chosen: intake.py.)

Labels go through servicekit's outbox: the `labelled` state and the event commit together, then the
event is published and marked sent; its id is uuid5(prediction id + "annotation"), never published twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from contracts.events import LabelObserved, LabelObservedPayload
from contracts.registry import parse_event
from servicekit.outbox import SqliteOutbox
from services.annotation.adapters.store import DISPUTED, LABELLED, OPEN, SUPERSEDED, AnnotationStore, TaskRow
from services.annotation.domain.policy import SamplingPolicy
from services.annotation.domain.resolution import notes_of, parse_answer, pseudonyms, resolve
from services.annotation.metrics import CLIENT_AGREEMENT, CLIENT_LABELS_SEEN, LABELS, set_tasks_by_state
from services.annotation.settings import AnnotationSettings

log = logging.getLogger(__name__)

LABEL_NAMESPACE = uuid.UUID("5d0e7a43-6f0b-4c1e-9b6e-3f8a2c4d7e91")


def label_event_id(prediction_id: str) -> uuid.UUID:
    return uuid.uuid5(LABEL_NAMESPACE, f"{prediction_id}annotation")


class Labels:
    """Settles tasks from their annotations and publishes their labels through the outbox; clients'
    labels supersede them. `pseudonym_key` is set at start (read from its file on first use)."""

    def __init__(
        self,
        settings: AnnotationSettings,
        policy: SamplingPolicy,
        store: AnnotationStore,
        outbox: SqliteOutbox,
        pseudonym_key: bytes,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.outbox = outbox
        self.pseudonym_key = pseudonym_key

    async def on_client_labels(self, events: list[LabelObserved]) -> None:
        """Clients' labels: remembered, and they supersede any task of the same prediction (the rule of
        precedence, module docstring). Our own annotation labels come back here too and are ignored."""
        superseded = 0
        for event in events:
            label = event.payload
            if label.source != "client" or not label.prediction_id:
                continue
            CLIENT_LABELS_SEEN.inc()
            with self.outbox.transaction() as conn:
                self.store.remembered.put_client_label(conn, label.prediction_id, str(label.label))
                row = self.store.get(label.prediction_id)
                if row is None or row.state == SUPERSEDED:
                    continue
                if row.state == LABELLED and not self.outbox.discard(
                    conn, str(label_event_id(row.prediction_id))
                ):
                    continue  # published already: it stays on the log, training prefers the client's label
                self.store.update(
                    row.prediction_id, conn, state=SUPERSEDED, note="a client labelled this prediction"
                )
            superseded += 1
            if row.outcome is not None:
                CLIENT_AGREEMENT.labels(str(row.outcome == str(label.label)).lower()).inc()
            LABELS.labels("superseded").inc()
        if superseded:
            set_tasks_by_state(self.store.counts())

    async def settle(self, row: TaskRow, annotations: list[dict[str, Any]]) -> None:
        """A task's annotations as read from Label Studio: notes kept, and the task resolved."""
        answers = [
            parse_answer(a, self.settings.max_comment_chars) for a in annotations if isinstance(a, dict)
        ]
        flagged, comment = notes_of(answers)
        resolution = resolve(answers, self.policy.annotations_per_task)
        outcome = ""
        with self.outbox.transaction() as conn:
            current = self.store.get(row.prediction_id)
            if current is None:
                return
            notes: dict[str, Any] = {"reasoning_wrong": int(flagged), "comment": comment or None}
            if current.state == SUPERSEDED and current.outcome is None and resolution.status == "agreed":
                client = self.store.remembered.client_label(row.prediction_id, conn)
                names = pseudonyms(self.pseudonym_key, resolution.agreeing)
                self.store.update(
                    row.prediction_id, conn, outcome=resolution.label, agreement=resolution.agreement,
                    annotators=names, **notes,
                )  # fmt: skip
                if client is not None:  # answered after a client's label superseded it: annotator quality
                    CLIENT_AGREEMENT.labels(str(client == resolution.label).lower()).inc()
            elif current.state in (LABELLED, SUPERSEDED) or current.task_id is None:
                self.store.update(row.prediction_id, conn, **notes)
            elif resolution.status == "pending":
                self.store.update(row.prediction_id, conn, state=OPEN, **notes)
            elif resolution.status == "disputed":
                self.store.update(
                    row.prediction_id, conn, state=DISPUTED, agreement=resolution.agreement, **notes
                )
                outcome = "disputed" if current.state != DISPUTED else ""
            else:
                client = self.store.remembered.client_label(row.prediction_id, conn)
                fields = {"outcome": resolution.label, "agreement": resolution.agreement, **notes}
                names = pseudonyms(self.pseudonym_key, resolution.agreeing)
                if client is not None:
                    self.store.update(
                        row.prediction_id, conn, state=SUPERSEDED, annotators=names,
                        note="a client labelled this prediction", **fields,
                    )  # fmt: skip
                    CLIENT_AGREEMENT.labels(str(client == resolution.label).lower()).inc()
                    outcome = "superseded"
                else:
                    self.store.update(row.prediction_id, conn, state=LABELLED, annotators=names, **fields)
                    self.outbox.add(conn, self._label(current, resolution.label or "", resolution, names),
                                    self.settings.labels_topic)  # fmt: skip
                    outcome = "published"
        if outcome:
            LABELS.labels(outcome).inc()
        if outcome == "published":
            await self.flush_quietly()

    def _label(self, row: TaskRow, label: str, resolution: Any, names: list[str]) -> LabelObserved:
        made = parse_event(row.prediction.encode())
        payload = LabelObservedPayload(
            dataset=self.settings.dataset,
            entity_id=row.entity_id or row.prediction_id,
            label=label,
            event_time=resolution.at or datetime.now(UTC),
            prediction_id=row.prediction_id,
            source="annotation",
            task_id=str(row.task_id),
            annotators=names,
            agreement=resolution.agreement,
        )
        return LabelObserved.model_validate(
            {
                "event_id": label_event_id(row.prediction_id),
                "producer": self.settings.service_name,
                "payload": payload,
                "correlation_id": made.correlation_id,
                "causation_id": str(made.event_id),
            }
        )

    async def flush_forever(self, every_s: float = 5.0) -> None:
        """Labels left in the outbox (the broker was away when they were made) are sent from here,
        whatever Label Studio's state."""
        while True:
            await asyncio.sleep(every_s)
            if self.outbox.pending():
                await self.flush_quietly()

    async def flush_quietly(self) -> None:
        """Publish the outbox's labels; a broker that is away is retried at the next sync."""
        try:
            await self.outbox.flush()
        except Exception as exc:
            log.warning("labels not published yet (%s); retried at the next sync", type(exc).__name__)
