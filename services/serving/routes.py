"""HTTP entry points: parse, call a handler, return. Errors are mapped in app.py.

/predict parses its body with pydantic-core straight from bytes (faster than FastAPI's generic body
handling on the hot path, and it lets an oversized body be refused before it is read whole).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.serving.domain.model import LoadedModel
from services.serving.errors import BatchTooLarge
from services.serving.handlers import PredictionHandler, Query
from services.serving.labels import LabelHandler
from services.serving.schemas import (
    LabelAccepted,
    LabelRequest,
    ModelInfo,
    ModelStatus,
    PredictionOut,
    PredictRequest,
)
from services.serving.settings import ServingSettings

router = APIRouter(tags=["serving"])
_json = msgspec.json.Encoder()


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/$defs/{model}")}
            },
        }
    }


@router.post(
    "/predict",
    summary="Score one application (by entity key or feature values) or a batch (client role)",
    response_model=PredictionOut | list[PredictionOut],
    openapi_extra=_body_schema(PredictRequest),
    responses=error_responses(
        404,
        413,
        422,
        503,
        s404="unknown entity (the id is not echoed back)",
        s413="batch or body too large",
        s422="invalid body or features, or values outside the training profile",
        s503="no champion loaded yet, or feature store unavailable",
    ),
)
async def predict(request: Request, _: Annotated[Principal, Depends(require_roles(Role.CLIENT))]) -> Response:
    started = time.perf_counter()
    settings: ServingSettings = request.app.state.settings
    body = await _read_body(request, settings.max_body_bytes)
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return invalid(exc)
    if parsed.instances is None:
        queries = [Query(parsed.entity_id, parsed.features)]
    elif len(parsed.instances) > settings.max_batch_size:
        raise BatchTooLarge(
            f"{len(parsed.instances)} instances; at most {settings.max_batch_size} per request"
        )
    else:
        queries = [Query(i.entity_id, i.features) for i in parsed.instances]
    handler: PredictionHandler = request.app.state.predictions
    predictions = [p.response() for p in handler.predict(queries, started)]
    content = predictions if parsed.instances is not None else predictions[0]
    return Response(_json.encode(content), media_type="application/json")


@router.post(
    "/labels",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ground truth for a prediction (producer or client role); published as LabelObserved",
    openapi_extra=_body_schema(LabelRequest),
    response_model=LabelAccepted,
    responses=error_responses(
        404,
        409,
        413,
        422,
        503,
        s404="no such prediction made by this service (or no longer remembered)",
        s409="entity_id is not the prediction's, or the prediction has another label",
        s413="body too large",
        s422="invalid body",
        s503="Kafka unavailable; retry",
    ),
)
async def labels(
    request: Request, _: Annotated[Principal, Depends(require_roles(Role.PRODUCER, Role.CLIENT))]
) -> Response:
    settings: ServingSettings = request.app.state.settings
    body = await _read_body(request, settings.max_body_bytes)
    try:
        parsed = LabelRequest.model_validate_json(body)
    except ValidationError as exc:
        return invalid(exc)
    handler: LabelHandler = request.app.state.labels
    event = await handler.observe(parsed.prediction_id, parsed.label, parsed.entity_id)
    accepted = LabelAccepted(
        event_id=str(event.event_id), prediction_id=parsed.prediction_id, entity_id=event.payload.entity_id
    )
    return JSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/model",
    summary="The models being served (any role)",
    response_model=ModelStatus,
    responses=error_responses(),
)
async def model(request: Request, _: Annotated[Principal, Depends(require_roles(*Role))]) -> ModelStatus:
    slot = request.app.state.slot
    return ModelStatus(champion=_info(slot.champion), shadow=_info(slot.challenger))


def _info(model: LoadedModel | None) -> ModelInfo | None:
    if model is None:
        return None
    return ModelInfo(
        alias=model.alias,
        model_name=model.name,
        model_version=model.version,
        loaded_at=model.loaded_at,
        load_seconds=model.load_seconds,
        threshold=model.threshold,
        features=list(model.feature_names),
        scorer=model.scorer.kind,
        profiled=sorted(model.profile),
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BatchTooLarge(f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BatchTooLarge(f"body larger than {limit} bytes")
    return bytes(body)


def invalid(exc: ValidationError) -> JSONResponse:
    """422 naming each failing field; the offending values are not echoed (they may be personal)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
