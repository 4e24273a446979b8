"""What a Label Studio webhook may tell us: which annotation of which task changed, nothing more.

Its body is never trusted for content (Label Studio signs nothing; anyone holding the key could write
anything): it only names the annotation and its task, and the service reads the annotations back from
Label Studio's API with its own token. What cannot name them is malformed, with a stable reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class WebhookRejected(Exception):
    """A webhook the service will not act on: `code` is its stable reason (the dead letter's code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebhookRef:
    action: str
    annotation_id: int
    task_id: int
    updated_at: str

    @property
    def key(self) -> bytes:
        return str(self.task_id).encode()


MAX_ID = 2**63 - 1  # SQLite's integer: a larger "id" names nothing we could have stored


def _int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
    return value if ok else None


def _time(value: Any) -> str:
    """The annotation's update time as a key part: a short string that is valid UTF-8, else empty."""
    if not isinstance(value, str):
        return ""
    text = value[:64]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but no text
        raise WebhookRejected("bad_updated_at", "the annotation's updated_at is not text") from None
    return text


def parse_webhook(body: bytes | None) -> WebhookRef:
    """The annotation and task a webhook names, or `WebhookRejected` with why not."""
    try:
        data = json.loads(body or b"")
    except (ValueError, RecursionError):
        raise WebhookRejected("not_json", "the webhook body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected("not_an_object", "the webhook body is not a JSON object")
    action = data.get("action")
    if action not in ACTIONS:
        raise WebhookRejected("unsupported_action", f"the action is not one of {', '.join(ACTIONS)}")
    annotation = data.get("annotation")
    if not isinstance(annotation, dict):
        raise WebhookRejected("no_annotation", "the webhook names no annotation")
    annotation_id = _int(annotation.get("id"))
    if annotation_id is None:
        raise WebhookRejected("no_annotation", "the annotation has no id")
    task = data.get("task")
    task_id = _int(annotation.get("task")) or (_int(task.get("id")) if isinstance(task, dict) else None)
    if task_id is None:
        raise WebhookRejected("no_task", "the webhook names no task")
    updated_at = _time(annotation.get("updated_at") or annotation.get("created_at"))
    return WebhookRef(str(action), annotation_id, task_id, updated_at)


def task_id_of(body: bytes | None) -> bytes | None:
    """The Kafka key of a webhook body: its task id when it names one (malformed ones have none)."""
    try:
        return parse_webhook(body).key
    except WebhookRejected:
        return None
