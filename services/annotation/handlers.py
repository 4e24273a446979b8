"""Use cases of the annotation service: choose cases, send them to Label Studio, bring labels back.

The rule of precedence: **an annotation never overrides a client's label.** A client's label for a
prediction (a `LabelObserved` with source "client" on labels.observed) seen before the task is made,
while it is open or disputed, or after its annotation settled it but before the label was published,
makes the task `superseded`: its annotation is not published (an unsent event is withdrawn from the
outbox in the same transaction), and whether the annotators agreed with the client is counted
(`annotation_client_agreement_total`, a measure of annotator quality). A label already published
stays on the log; training ranks a client's label above any annotation of the same entity.

Delivery: a chosen case is a `queued` row first (the import outbox); the sync task imports queued rows
in batches and marks them `open` with their Label Studio task id, after reconciling rows whose import
may have happened (by `data.prediction_id`), so a crash between import and marking makes no duplicate.
Labels go through servicekit's outbox: the `labelled` state and the event commit together, then the
event is published and marked sent; its id is uuid5(prediction id + "annotation"), never published twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from contracts.events import (
    DriftDetected,
    ExplanationProduced,
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
)
from contracts.registry import encode_event, parse_event
from servicekit.deadletters import RawMessage
from servicekit.outbox import SqliteOutbox
from servicekit.tasks import retrying
from services.annotation.adapters.store import (
    DISPUTED,
    LABELLED,
    OPEN,
    QUEUED,
    SUPERSEDED,
    AnnotationStore,
    TaskRow,
)
from services.annotation.domain.policy import Case, SamplingPolicy, groups_of, reason_kind, reasons_for
from services.annotation.domain.resolution import notes_of, parse_answer, pseudonyms, resolve
from services.annotation.domain.webhook import WebhookRef, WebhookRejected, parse_webhook
from services.annotation.errors import LabelStudioUnavailable, MalformedWebhook, ReplayedWebhook
from services.annotation.metrics import (
    CLIENT_AGREEMENT,
    CLIENT_LABELS_SEEN,
    LABEL_STUDIO_UP,
    LABELS,
    PREDICTION_TO_TASK,
    TASKS_BY_STATE,
    TASKS_CHOSEN,
    TASKS_SKIPPED,
    THRESHOLD_FALLBACKS,
    WEBHOOKS,
)
from services.annotation.settings import AnnotationSettings

log = logging.getLogger(__name__)

LABEL_NAMESPACE = uuid.UUID("5d0e7a43-6f0b-4c1e-9b6e-3f8a2c4d7e91")
NO_EXPLANATION = "No explanation has been produced for this prediction yet."
DeadLetter = Callable[[RawMessage, str, str], Awaitable[None]]


class LabelStudio(Protocol):
    async def ping(self) -> bool: ...
    async def ensure_project(self, title: str, maximum_annotations: int) -> int: ...
    async def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> None: ...
    async def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> list[int] | None: ...
    async def tasks(self, project_id: int) -> list[dict[str, Any]]: ...
    async def task_annotations(self, task_id: int) -> list[dict[str, Any]] | None: ...
    async def annotation(self, annotation_id: int) -> dict[str, Any] | None: ...


class Thresholds(Protocol):
    def threshold(self, model_name: str, version: str) -> float | None: ...


def label_event_id(prediction_id: str) -> uuid.UUID:
    return uuid.uuid5(LABEL_NAMESPACE, f"{prediction_id}annotation")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass
class SyncStatus:
    reachable: bool | None = None
    unreachable_since: float | None = None
    last_sync: float | None = None
    last_error: str | None = None


class AnnotationHandler:
    def __init__(
        self,
        settings: AnnotationSettings,
        policy: SamplingPolicy,
        store: AnnotationStore,
        outbox: SqliteOutbox,
        label_studio: LabelStudio,
        thresholds: Thresholds,
        pseudonym_key: bytes,
        webhook_key: str | None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.outbox = outbox
        self.ls = label_studio
        self.thresholds = thresholds
        self.pseudonym_key = pseudonym_key
        self.webhook_key = webhook_key
        self.status = SyncStatus()
        self.wake = asyncio.Event()
        self._hooked: set[int] = set()
        self._seen_signatures: dict[int, tuple[Any, ...]] = {}
        self._said_polling_only = False

    # -- the bus ---------------------------------------------------------------------------------

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
                until = self.store.drift_until(conn, made.model_name)
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
                client = self.store.client_label(made.prediction_id, conn)
                summary = self.store.explanation(conn, made.prediction_id)
                row = TaskRow(
                    prediction_id=made.prediction_id,
                    model_name=made.model_name,
                    model_version=made.model_version,
                    entity_id=made.entity_id,
                    reasons=reasons,
                    groups=groups,
                    state=SUPERSEDED if client is not None else QUEUED,
                    data=self._task_data(event, reasons, summary),
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
            self.refresh_gauges()
            self.wake.set()

    def _task_data(self, event: PredictionMade, reasons: list[str], summary: str | None) -> dict[str, Any]:
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

    async def on_drift(self, events: list[DriftDetected]) -> None:
        with self.store.transaction() as conn:
            for event in events:
                if event.payload.model_name is None:
                    continue
                until = event.occurred_at.timestamp() + self.policy.drift.window_s
                self.store.open_drift_window(conn, event.payload.model_name, until)

    async def on_explanations(self, events: list[ExplanationProduced]) -> None:
        with self.store.transaction() as conn:
            for event in events:
                produced = event.payload
                if produced.scope != "local" or not produced.prediction_id:
                    continue
                self.store.put_explanation(conn, produced.prediction_id, produced.summary)
                row = conn.execute(
                    "SELECT data FROM tasks WHERE prediction_id = ? AND state = ? "
                    "AND import_started_at IS NULL",
                    (produced.prediction_id, QUEUED),
                ).fetchone()
                if row is not None:  # not sent yet: the reviewer will see it
                    data = parse_data(row[0]) | {"explanation": produced.summary}
                    self.store.update(produced.prediction_id, conn, data=data)

    async def on_labels(self, events: list[LabelObserved]) -> None:
        """Clients' labels: remembered, and they supersede any task of the same prediction (the rule of
        precedence, module docstring). Our own annotation labels come back here too and are ignored."""
        superseded = 0
        for event in events:
            label = event.payload
            if label.source != "client" or not label.prediction_id:
                continue
            CLIENT_LABELS_SEEN.inc()
            with self.outbox.transaction() as conn:
                self.store.put_client_label(conn, label.prediction_id, str(label.label))
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
            self.refresh_gauges()

    # -- Label Studio ----------------------------------------------------------------------------

    async def sync_forever(self) -> None:
        """The sync task: import queued tasks, read open ones back, every poll interval (or sooner when
        cases were chosen); Label Studio down: retried with backoff, nothing lost (rows stay queued)."""
        while True:
            await self.flush_labels_quietly()
            await retrying(
                self.sync_once,
                what="syncing with Label Studio",
                first_wait_s=0.5,
                max_wait_s=self.settings.max_backoff_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.poll_interval_s)
            self.wake.clear()

    async def sync_once(self) -> None:
        try:
            models = self.store.models_to_sync()
            if not models and not await self.ls.ping():  # nothing to do: still say whether it is there
                raise LabelStudioUnavailable("Label Studio does not answer /health")
            for model in models:
                await self._sync_model(model)
        except LabelStudioUnavailable as exc:
            if self.status.reachable is not False:
                self.status.unreachable_since = time.time()
            self.status.reachable = False
            self.status.last_error = exc.message
            LABEL_STUDIO_UP.set(0)
            raise
        self.status.reachable = True
        self.status.unreachable_since = None
        self.status.last_error = None
        self.status.last_sync = time.time()
        LABEL_STUDIO_UP.set(1)
        self.refresh_gauges()

    async def _project(self, model: str) -> int:
        project = self.store.project(model)
        if project is None:
            title = f"{self.settings.project_title_prefix}{model}"
            project = await self.ls.ensure_project(title, self.policy.annotations_per_task)
            self.store.set_project(model, project)
        if project not in self._hooked:
            if self.webhook_key:
                headers = {"X-API-Key": self.webhook_key}
                await self.ls.ensure_webhook(project, self.settings.hook_url, headers)
            elif not self._said_polling_only:
                log.info("no webhook key (ANNOTATION_WEBHOOK_API_KEY or api-keys.json): polling only")
                self._said_polling_only = True
            self._hooked.add(project)
        return project

    async def _sync_model(self, model: str) -> None:
        project = await self._project(model)
        maybe = self.store.maybe_imported(model)
        listing: list[dict[str, Any]] | None = None
        if maybe:
            listing = await self.ls.tasks(project)
            self._reconcile(maybe, listing, project)
        while queued := self.store.in_state(model, QUEUED, limit=self.settings.import_batch_size):
            self.store.mark_import_started([r.prediction_id for r in queued])
            ids = await self.ls.import_tasks(project, [r.data for r in queued])
            if ids is not None:
                for row, task_id in zip(queued, ids, strict=True):
                    self._opened(row, project, task_id)
            elif not self._reconcile(queued, await self.ls.tasks(project), project):
                raise LabelStudioUnavailable("Label Studio took an import but shows none of its tasks")
            listing = None
        active = self.store.awaiting_answers(model)
        if not active:
            return
        if listing is None:
            listing = await self.ls.tasks(project)
        by_id = {t.get("id"): t for t in listing}
        for row in active:
            task = by_id.get(row.task_id)
            if task is None:
                continue
            signature = (
                task.get("total_annotations"),
                task.get("cancelled_annotations"),
                task.get("updated_at"),
            )
            unchanged = self._seen_signatures.get(row.task_id or 0) == signature
            if not any(signature[:2]) or (row.state != DISPUTED and unchanged):
                continue  # a disputed task is read every time: ground truth may be marked without a change
            annotations = await self.ls.task_annotations(int(row.task_id or 0))
            if annotations is not None:
                await self.settle(row, annotations)
                self._seen_signatures[row.task_id or 0] = signature

    def _reconcile(self, rows: list[TaskRow], listing: list[dict[str, Any]], project: int) -> int:
        """Rows whose import may have happened: open if Label Studio has their task, queued again if
        not. Returns how many were found."""
        found: dict[str, int] = {}
        for task in sorted(listing, key=lambda t: int(t.get("id") or 0)):
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            prediction_id = data.get("prediction_id") if data else None
            if isinstance(prediction_id, str):
                if prediction_id in found:
                    log.warning(
                        "Label Studio holds two tasks of prediction %s; using the first", prediction_id
                    )
                    continue
                found[prediction_id] = int(task["id"])
        opened = 0
        for row in rows:
            if row.prediction_id in found:
                self._opened(row, project, found[row.prediction_id])
                opened += 1
            else:
                self.store.update(row.prediction_id, import_started_at=None)
        return opened

    def _opened(self, row: TaskRow, project: int, task_id: int) -> None:
        now = time.time()
        self.store.update(row.prediction_id, state=OPEN, project_id=project, task_id=task_id, opened_at=now)
        PREDICTION_TO_TASK.observe(max(0.0, now - row.predicted_at))

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
                client = self.store.client_label(row.prediction_id, conn)
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
                client = self.store.client_label(row.prediction_id, conn)
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
            await self.flush_labels_quietly()

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
                await self.flush_labels_quietly()

    async def flush_labels_quietly(self) -> None:
        """Publish the outbox's labels; a broker that is away is retried at the next sync."""
        try:
            await self.outbox.flush()
        except Exception as exc:
            log.warning("labels not published yet (%s); retried at the next sync", type(exc).__name__)

    # -- webhooks --------------------------------------------------------------------------------

    async def check_webhook(self, body: bytes) -> WebhookRef:
        """The route's synchronous answer: malformed (422), replayed (409), or accepted."""
        try:
            ref = parse_webhook(body)
        except WebhookRejected as exc:
            raise MalformedWebhook(exc.code, exc.message) from None
        if self.store.by_task_id(ref.task_id) is None:
            raise MalformedWebhook("unknown_task", "the task is not one of this service's tasks")
        if self.store.webhook_seen(ref.annotation_id, ref.updated_at) is not None:
            raise ReplayedWebhook("this annotation (id and update time) was already delivered")
        try:
            annotation = await self.ls.annotation(ref.annotation_id)
        except LabelStudioUnavailable:
            return ref  # the consumer checks it again once Label Studio answers
        if annotation is None or annotation.get("task") != ref.task_id:
            raise MalformedWebhook("unknown_annotation", "Label Studio has no such annotation of this task")
        return ref

    async def on_webhooks(self, records: list[RawMessage], dead_letter: DeadLetter) -> None:
        """The webhooks topic: each body names an annotation; its task's annotations are read back from
        Label Studio (the body is not trusted for content). Bad ones are dead-lettered with the reason."""
        for raw in records:
            source = f"{raw.source.topic}:{raw.source.partition}:{raw.source.offset}"
            try:
                ref = self._known_webhook(raw.value)
                seen = self.store.webhook_seen(ref.annotation_id, ref.updated_at)
                if seen == source:
                    continue  # a redelivery of the record that processed it
                if seen is not None:
                    raise ReplayedWebhook("this annotation (id and update time) was already delivered")
                annotations = await self.ls.task_annotations(ref.task_id)
                ids = {a.get("id") for a in annotations or [] if isinstance(a, dict)}
                if ref.annotation_id not in ids:
                    raise MalformedWebhook(
                        "unknown_annotation", "Label Studio has no such annotation of this task"
                    )
                row = self.store.by_task_id(ref.task_id)
                if row is not None:
                    await self.settle(row, annotations or [])
                self.store.mark_webhook_seen(ref.annotation_id, ref.updated_at, source)
                WEBHOOKS.labels("processed").inc()
            except (MalformedWebhook, ReplayedWebhook) as exc:
                await dead_letter(raw, exc.code, exc.message)

    def _known_webhook(self, body: bytes | None) -> WebhookRef:
        try:
            ref = parse_webhook(body)
        except WebhookRejected as exc:
            raise MalformedWebhook(exc.code, exc.message) from None
        if self.store.by_task_id(ref.task_id) is None:
            raise MalformedWebhook("unknown_task", "the task is not one of this service's tasks")
        return ref

    # -- views -----------------------------------------------------------------------------------

    def refresh_gauges(self) -> None:
        for state, count in self.store.counts().items():
            TASKS_BY_STATE.labels(state).set(count)

    def overview(self) -> dict[str, Any]:
        return {
            "counts": self.store.counts(),
            "label_studio": {
                "url": self.settings.label_studio_url,
                "reachable": self.status.reachable,
                "unreachable_since": _iso(self.status.unreachable_since),
                "last_sync": _iso(self.status.last_sync),
                "last_error": self.status.last_error,
                "webhooks": "registered" if self.webhook_key else "off (no key): polling only",
            },
            "labels_unsent": self.outbox.pending(),
            "recent": [view(row) for row in self.store.recent(self.settings.recent_tasks)],
        }


def parse_data(text: str) -> dict[str, Any]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


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
