"""The Label Studio sync: chosen cases imported as tasks, their answers read back by polling.

Delivery: a chosen case is a `queued` row first (the import outbox); the sync task imports queued rows
in batches and marks them `open` with their Label Studio task id, after reconciling rows whose import
may have happened (by `data.prediction_id`), so a crash between import and marking makes no duplicate.
Polling is the guaranteed path back (webhooks.py is the fast one): a task whose annotation counts
changed is read and settled (labels.py). Label Studio down: retried with backoff, nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from servicekit.tasks import retrying
from services.annotation.adapters.store import DISPUTED, OPEN, QUEUED, AnnotationStore, TaskRow
from services.annotation.domain.policy import SamplingPolicy
from services.annotation.errors import LabelStudioUnavailable, ProjectGone
from services.annotation.labels import Labels
from services.annotation.metrics import LABEL_STUDIO_UP, PREDICTION_TO_TASK, TASKS_EXPIRED, set_tasks_by_state
from services.annotation.ports import LabelStudio
from services.annotation.settings import AnnotationSettings

log = logging.getLogger(__name__)


@dataclass
class SyncStatus:
    reachable: bool | None = None
    unreachable_since: float | None = None
    last_sync: float | None = None
    last_error: str | None = None


class LabelStudioSync:
    """Projects (one per model, with the webhook when there is a key), imports, reconciling, polling.
    Setting `wake` syncs at once instead of at the next poll interval."""

    def __init__(
        self,
        settings: AnnotationSettings,
        policy: SamplingPolicy,
        store: AnnotationStore,
        label_studio: LabelStudio,
        labels: Labels,
        webhook_key: str | None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.ls = label_studio
        self.labels = labels
        self.webhook_key = webhook_key
        self.status = SyncStatus()
        self.wake = asyncio.Event()
        self._hooked: set[int] = set()
        self._seen_signatures: dict[int, tuple[Any, ...]] = {}
        self._said_polling_only = False

    async def sync_forever(self) -> None:
        """The sync task: import queued tasks, read open ones back, every poll interval (or sooner when
        cases were chosen); Label Studio down: retried with backoff, nothing lost (rows stay queued)."""
        while True:
            await self.labels.flush_quietly()
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
        cutoff = time.time() - self.policy.task_ttl_s
        if expired := self.store.expire(cutoff):
            TASKS_EXPIRED.inc(expired)
            log.info("%d task(s) expired after %.0f s open", expired, self.policy.task_ttl_s)
        try:
            models = self.store.models_to_sync(cutoff)
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
        set_tasks_by_state(self.store.counts())

    async def _project(self, model: str) -> int:
        project = self.store.remembered.project(model)
        if project is None:
            title = f"{self.settings.project_title_prefix}{model}"
            project = await self.ls.ensure_project(title, self.policy.annotations_per_task)
            self.store.remembered.set_project(model, project)
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
        try:
            await self._sync_project(model, project)
        except ProjectGone:
            # Deleted in Label Studio: made again at the next sync. Its queued rows go there; rows open
            # in the deleted project lost their tasks and expire after task_ttl_s.
            log.warning("Label Studio's project %s of %s is gone; it is made again", project, model)
            self.store.remembered.forget_project(model)
            self._hooked.discard(project)
            raise

    async def _sync_project(self, model: str, project: int) -> None:
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
        active = self.store.awaiting_answers(model, time.time() - self.policy.task_ttl_s)
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
                await self.labels.settle(row, annotations)
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
        """The row's task exists in Label Studio. It becomes open only if it is still queued: a client's
        label that came during the import call made it superseded, and that stands."""
        now = time.time()
        with self.store.transaction() as conn:
            current = self.store.get(row.prediction_id)  # the same connection, under its lock
            state = OPEN if current is not None and current.state == QUEUED else None
            fields = {"state": state} if state else {}
            self.store.update(
                row.prediction_id, conn, project_id=project, task_id=task_id, opened_at=now, **fields
            )
        PREDICTION_TO_TASK.observe(max(0.0, now - row.predicted_at))
