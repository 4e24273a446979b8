"""HTTP face of the training service (ops role; admin admitted): ask for training, read the last outcome.

`POST /train` publishes a TrainingRequested (the same use case as drift) and answers 202 with its event
id, the window it asked for and a note on it (without a window: from the last concept change acted on;
a window that straddles it is honoured with a warning); the outcome follows on model.promoted /
model.rejected, at `GET /runs/latest` and, for one request by its event id, at `GET /requests/{id}`
(what a scheduler such as the nightly Airflow DAG polls).
`POST /retraining/pause` and `/retraining/resume` switch automatic retraining off and on, on drift and on
the policy's schedule alike (kept in the service's state, so it survives a restart); `POST /train` still
works while paused, and a scheduled due time that passes while paused is skipped, not made up on resume.
`GET /retraining` shows the switch, the retraining policy, the last decisions taken on drift events, and
under `schedule` each schedule trigger's next due time and its last fire (services/training/schedules.py).
`POST /models/{name}/rollback` moves the champion back to an earlier champion with a reason, as a
ModelPromoted of kind "rollback" (services/training/rollbacks.py); idempotent on `Idempotency-Key`.
`POST /models/{name}/canary` and `/canary/end` start (or change) and end a canary, as CanaryChanged
events (services/training/canaries.py).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.training.canaries import Canaries
from services.training.errors import NoRunYet, RunNotFinished, UnknownModel
from services.training.handlers import TrainingService
from services.training.rollbacks import RollbackRequest, Rollbacks

Ops = Annotated[Principal, Depends(require_roles(Role.OPS))]


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = Field(None, description="Train on applications from this time (inclusive).")
    end: AwareDatetime | None = Field(None, description="...up to this time (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> WindowBody:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("window.start must be before window.end")
        return self


class TrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["manual", "schedule"] = Field("manual", description="Why training is asked for.")
    window: WindowBody | None = Field(
        None,
        description="Limit the training data by label time. Default: from the last concept change a drift "
        "retrain acted on (all history before any).",
    )
    ignore_change_points: StrictBool = Field(
        False, description="Without a window, train on all history even after a concept change."
    )


def service(request: Request) -> TrainingService:
    training: TrainingService = request.app.state.training
    return training


Service = Annotated[TrainingService, Depends(service)]
router = APIRouter(tags=["training"])


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for a training run (ops role)",
    responses=error_responses(400, 422, 503, s503="Kafka unavailable; retry"),
)
async def train(principal: Ops, training: Service, body: TrainBody | None = None) -> dict[str, Any]:
    body = body or TrainBody()
    window = (body.window.start, body.window.end) if body.window else (None, None)
    event, chosen = await training.request_manual(
        _who(principal), body.reason, window, body.ignore_change_points
    )
    ids = {"event_id": str(event.event_id), "correlation_id": event.correlation_id, "status": "requested"}
    return ids | chosen.response()


@router.get(
    "/runs/latest",
    summary="Outcome of the last training run (ops role)",
    responses=error_responses(404, s404="no training run has finished yet"),
)
async def latest_run(_: Ops, request: Request) -> dict[str, Any]:
    training: TrainingService = request.app.state.training
    outcome = await asyncio.to_thread(training.state.latest_run)
    if outcome is None:
        raise NoRunYet("no training run has finished yet")
    return outcome


# A request id is the TrainingRequested's event id, a UUID: anything else is a 422, not a lookup.
RequestId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


@router.get(
    "/requests/{request_id}",
    summary="Outcome of the run one training request asked for, by its event id (ops role)",
    responses=error_responses(404, 422, s404="no outcome yet: unknown request, or its run has not finished"),
)
async def request_outcome(request_id: RequestId, _: Ops, training: Service) -> dict[str, Any]:
    outcome = await asyncio.to_thread(training.state.run, request_id)
    if outcome is None:
        raise RunNotFinished(f"no outcome yet for training request {request_id}")
    return outcome


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=500, description="Why (kept with the switch).")


@router.post(
    "/retraining/pause",
    summary="Pause automatic retraining on drift and on schedule (ops role)",
    responses=error_responses(400, 422),
)
async def pause(principal: Ops, training: Service, body: PauseBody | None = None) -> dict[str, Any]:
    """Pauses drift retrains and the policy's schedule alike; a scheduled due time that passes while
    paused is skipped, not made up on resume. `POST /train` still works."""
    return await training.set_paused(True, _who(principal), body.note if body else None)


@router.post(
    "/retraining/resume",
    summary="Resume automatic retraining on drift and on schedule (ops role)",
    responses=error_responses(400, 422),
)
async def resume(principal: Ops, training: Service, body: PauseBody | None = None) -> dict[str, Any]:
    """Resumes drift retrains and the schedule (the next due time fires; skipped ones do not)."""
    return await training.set_paused(False, _who(principal), body.note if body else None)


@router.get(
    "/retraining",
    summary="Retraining switch, policy, last decisions and next scheduled due times (ops role)",
    responses=error_responses(),
)
async def retraining(_: Ops, training: Service) -> dict[str, Any]:
    """The switch, the retraining policy, the last drift decisions, and under `schedule` each schedule
    trigger's next due time and last fire."""
    return await training.retraining_status()


# MLflow numbers versions with a 32-bit integer column; a bigger number is a 422, not a store error.
MAX_VERSION = 2**31 - 1


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why (in the event and the audit trail).")

    @model_validator(mode="after")
    def _reason_said(self) -> ReasonBody:
        if not self.reason.strip():
            raise ValueError("reason must not be blank")
        return self


class RollbackBody(ReasonBody):
    to_version: int | None = Field(
        None,
        ge=1,
        le=MAX_VERSION,
        description="Version to go back to (it must have been champion). Default: the "
        "champion before the current one.",
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="The same key again answers with the first result and moves nothing.",
    ),
]


@router.post(
    "/models/{name}/rollback",
    summary="Move the champion back to an earlier champion, with a reason (ops role)",
    responses=error_responses(
        400,
        404,
        409,
        422,
        503,
        s404="unknown model or version (code unknown_model, unknown_version)",
        s409="refused by the champion history (code no_champion, already_champion, never_champion, "
        "no_earlier_champion, idempotency_key_reused)",
        s503="Kafka or the registry unavailable; retry with the same Idempotency-Key",
    ),
)
async def rollback(
    name: str,
    principal: Ops,
    request: Request,
    body: RollbackBody,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    rollbacks: Rollbacks = request.app.state.rollbacks
    if name != rollbacks.model_name:
        raise UnknownModel(f"this service trains {rollbacks.model_name!r}, not {name!r}")
    to_version = None if body.to_version is None else str(body.to_version)
    asked = RollbackRequest(body.reason.strip(), _who(principal), to_version, idempotency_key)
    return await rollbacks.rollback(asked)


class CanaryBody(ReasonBody):
    version: int = Field(
        ge=1, le=MAX_VERSION, description="Registered version to send live traffic to (not the champion)."
    )
    share: float = Field(gt=0, le=0.5, description="Share of live traffic it answers, in (0, 0.5].")


def canaries(request: Request, name: str) -> Canaries:
    found: Canaries = request.app.state.canaries
    if name != found.model_name:
        raise UnknownModel(f"this service trains {found.model_name!r}, not {name!r}")
    return found


CanaryUseCase = Annotated[Canaries, Depends(canaries)]
CANARY_ERRORS = error_responses(
    400,
    404,
    409,
    422,
    503,
    s404="unknown model or version (code unknown_model, unknown_version)",
    s409="code no_champion, is_champion (start) or no_canary (end)",
    s503="Kafka or the registry unavailable; nothing changed, retry",
)


@router.post(
    "/models/{name}/canary",
    summary="Start or change a canary: a version answering a share of live traffic (ops role)",
    responses=CANARY_ERRORS,
)
async def start_canary(principal: Ops, use_case: CanaryUseCase, body: CanaryBody) -> dict[str, Any]:
    return await use_case.start(str(body.version), body.share, body.reason.strip(), _who(principal))


@router.post(
    "/models/{name}/canary/end",
    summary="End the canary: all traffic to the champion again (ops role)",
    responses=CANARY_ERRORS,
)
async def end_canary(principal: Ops, use_case: CanaryUseCase, body: ReasonBody) -> dict[str, Any]:
    return await use_case.end(body.reason.strip(), _who(principal))


def _who(principal: Principal) -> str:
    return f"{principal.role}:{principal.name}"


def install(app: FastAPI) -> None:
    app.include_router(router)
