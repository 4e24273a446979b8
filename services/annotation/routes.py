"""HTTP entry points: Label Studio's webhook (a webhook-role key in X-API-Key) and the ops view of the queue.

The webhook route appends every authenticated body it accepts for size to the raw topic
`annotation.webhooks` (keyed by task id), where the service consumes it like any input (a bad one is
dead-lettered with its reason), and answers at once: 202 accepted, 422 malformed (with the reason),
409 replayed, 413 too large. Its body is never trusted for content: it only names an annotation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from servicekit.auth import Principal, Role, require_roles
from servicekit.bodies import read_limited
from servicekit.errors import error_responses
from services.annotation.domain.webhook import task_id_of
from services.annotation.errors import UnknownTask, WebhookTooLarge
from services.annotation.metrics import WEBHOOKS
from services.annotation.views import QueueView
from services.annotation.webhooks import Webhooks

router = APIRouter(tags=["annotation"])
Ops = Annotated[Principal, Depends(require_roles(Role.OPS))]
Webhook = Annotated[Principal, Depends(require_roles(Role.WEBHOOK))]

WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "Label Studio's webhook payload (ANNOTATION_CREATED, ANNOTATION_UPDATED): "
                    "only `action`, `annotation.id`, `annotation.task` and `annotation.updated_at` are read.",
                    "properties": {
                        "action": {"type": "string", "enum": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]},
                        "annotation": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "task": {"type": "integer"},
                                "updated_at": {"type": "string"},
                            },
                        },
                    },
                }
            }
        },
    }
}


class WebhookAccepted(BaseModel):
    accepted: bool = True
    annotation_id: int
    task_id: int


class TaskView(BaseModel):
    prediction_id: str
    entity_id: str | None
    model_name: str
    model_version: str
    state: str = Field(description="queued, open, disputed, labelled, superseded or expired.")
    reasons: list[str] = Field(description="Every reason the policy chose the case for.")
    task_id: int | None = Field(description="Label Studio's task id, once imported.")
    outcome: str | None = Field(description="The annotators' label, once settled.")
    agreement: float | None
    annotators: list[str] = Field(description="Pseudonyms, never Label Studio's ids.")
    reasoning_wrong: bool = Field(description="An annotator flagged the explanation's reasoning as wrong.")
    comment: str | None = Field(description="The annotators' comments (length-limited; never on the bus).")
    note: str | None
    chosen_at: str | None
    opened_at: str | None


class LabelStudioState(BaseModel):
    url: str
    reachable: bool | None = Field(description="Whether the last sync reached it (null: none yet).")
    unreachable_since: str | None
    last_sync: str | None
    last_error: str | None
    webhooks: str


class TasksOverview(BaseModel):
    counts: dict[str, int] = Field(description="Tasks by state.")
    label_studio: LabelStudioState
    labels_unsent: int = Field(description="Labels in the outbox, not yet acknowledged by Kafka.")
    recent: list[TaskView]


def _webhooks(request: Request) -> Webhooks:
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


def _queue(request: Request) -> QueueView:
    queue: QueueView = request.app.state.queue
    return queue


@router.post(
    "/label-studio/webhook",
    status_code=202,
    response_model=WebhookAccepted,
    summary="Label Studio's webhook: names an annotation whose labels are read back (webhook key)",
    openapi_extra=WEBHOOK_BODY,
    responses=error_responses(
        409,
        413,
        422,
        503,
        s409="this annotation (id and update time) was already delivered: replayed",
        s422="malformed: not JSON, no annotation or task id, not one of our tasks, or an annotation "
        "Label Studio does not know (`code` says which)",
        s503="the webhook could not be appended to Kafka; Label Studio's call fails, polling covers it",
    ),
)
async def webhook(request: Request, _: Webhook) -> WebhookAccepted:
    webhooks = _webhooks(request)
    try:
        body = await read_limited(request, webhooks.max_bytes, WebhookTooLarge)
    except WebhookTooLarge:
        WEBHOOKS.labels("too_large").inc()
        raise
    await request.app.state.append_webhook(body, task_id_of(body))
    try:
        ref = await webhooks.check(body)
    except Exception as exc:
        WEBHOOKS.labels(getattr(exc, "code", "error")).inc()
        raise
    WEBHOOKS.labels("accepted").inc()
    return WebhookAccepted(annotation_id=ref.annotation_id, task_id=ref.task_id)


@router.get(
    "/tasks",
    response_model=TasksOverview,
    summary="The review queue: tasks by state, Label Studio's reachability, the latest tasks (ops)",
    responses=error_responses(),
)
async def tasks(request: Request, _: Ops) -> dict[str, Any]:
    return _queue(request).overview()


@router.get(
    "/tasks/{prediction_id}",
    response_model=TaskView,
    summary="The task of one prediction (ops)",
    responses=error_responses(404, 422, s404="no task was made for this prediction"),
)
async def task(
    request: Request,
    _: Ops,
    prediction_id: Annotated[str, Path(min_length=1, max_length=256, description="As on predictions.made.")],
) -> dict[str, Any]:
    found = _queue(request).task(prediction_id)
    if found is None:
        raise UnknownTask("no task was made for this prediction (not chosen, or not seen)")
    return found
