"""Label Studio's webhooks: the route's synchronous check, then the consumer of `annotation.webhooks`.

A body only names an annotation (id, task, update time); its task's annotations are read back from
Label Studio and settled (labels.py). A body seen before (same annotation id and update time, from
another Kafka record) is a replay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from servicekit.deadletters import RawMessage
from services.annotation.adapters.store import AnnotationStore
from services.annotation.domain.webhook import WebhookRef, WebhookRejected, parse_webhook
from services.annotation.errors import LabelStudioUnavailable, MalformedWebhook, ReplayedWebhook
from services.annotation.labels import Labels
from services.annotation.metrics import WEBHOOKS
from services.annotation.ports import LabelStudio

DeadLetter = Callable[[RawMessage, str, str], Awaitable[None]]


class Webhooks:
    """`max_bytes` bounds the body the route reads (larger: 413, never appended)."""

    def __init__(
        self, store: AnnotationStore, label_studio: LabelStudio, labels: Labels, max_bytes: int
    ) -> None:
        self.store = store
        self.ls = label_studio
        self.labels = labels
        self.max_bytes = max_bytes

    async def check(self, body: bytes) -> WebhookRef:
        """The route's synchronous answer: malformed (422), replayed (409), or accepted."""
        ref = self._known(body)
        if self.store.remembered.webhook_seen(ref.annotation_id, ref.updated_at) is not None:
            raise ReplayedWebhook("this annotation (id and update time) was already delivered")
        try:
            annotation = await self.ls.annotation(ref.annotation_id)
        except LabelStudioUnavailable:
            return ref  # the consumer checks it again once Label Studio answers
        if annotation is None or annotation.get("task") != ref.task_id:
            raise MalformedWebhook("unknown_annotation", "Label Studio has no such annotation of this task")
        return ref

    async def on_records(self, records: list[RawMessage], dead_letter: DeadLetter) -> None:
        """The webhooks topic: each body names an annotation; its task's annotations are read back from
        Label Studio (the body is not trusted for content). Bad ones are dead-lettered with the reason."""
        for raw in records:
            source = f"{raw.source.topic}:{raw.source.partition}:{raw.source.offset}"
            try:
                ref = self._known(raw.value)
                seen = self.store.remembered.webhook_seen(ref.annotation_id, ref.updated_at)
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
                    await self.labels.settle(row, annotations or [])
                self.store.remembered.mark_webhook_seen(ref.annotation_id, ref.updated_at, source)
                WEBHOOKS.labels("processed").inc()
            except (MalformedWebhook, ReplayedWebhook) as exc:
                await dead_letter(raw, exc.code, exc.message)

    def _known(self, body: bytes | None) -> WebhookRef:
        """A well-formed body naming one of this service's tasks, or MalformedWebhook with the reason."""
        try:
            ref = parse_webhook(body)
        except WebhookRejected as exc:
            raise MalformedWebhook(exc.code, exc.message) from None
        if self.store.by_task_id(ref.task_id) is None:
            raise MalformedWebhook("unknown_task", "the task is not one of this service's tasks")
        return ref
