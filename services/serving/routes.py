"""HTTP entry points: parse, call a handler, return. Errors are mapped in app.py.

/predict parses its body with pydantic-core straight from bytes (faster than FastAPI's generic body
handling on the hot path, and it lets an oversized body be refused before it is read whole).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from servicekit.auth import USER_ROLES, Principal, Role, require_roles
from servicekit.bodies import read_limited
from servicekit.errors import error_responses, invalid_request
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
    """The body's JSON schema with its nested models written in place: a `#/$defs/...` reference
    inside an OpenAPI document points at the document's root, where nothing is (the fuzzer found
    `#/$defs/Instance` unresolvable and skipped the batch part of POST /predict)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(schema, schema.get("$defs", {}))}},
        }
    }


def document_limits(app: FastAPI, settings: ServingSettings) -> None:
    """The limits are settings, so they are written into this app's document when it is built: the
    batch's `maxItems` and the bytes of a body, which the routes enforce with a 413."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for path in ("/predict", "/labels"):
                body = document["paths"][path]["post"]["requestBody"]
                body["description"] = f"At most {settings.max_body_bytes} bytes."
            predict = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
            predict["schema"]["properties"]["instances"]["maxItems"] = settings.max_batch_size
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` without `$defs`, each reference replaced by its definition (our bodies' models are
    not recursive, so this ends)."""
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref", "")
    if reference.startswith("#/$defs/"):
        return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
    return {key: _inlined(value, definitions) for key, value in schema.items() if key != "$defs"}


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
    body = await read_limited(request, settings.max_body_bytes, BatchTooLarge)
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
    body = await read_limited(request, settings.max_body_bytes, BatchTooLarge)
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
async def model(
    request: Request, _: Annotated[Principal, Depends(require_roles(*USER_ROLES))]
) -> ModelStatus:
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


def invalid(exc: ValidationError) -> JSONResponse:
    """422 naming each failing field, in the kit's one error shape."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return invalid_request(errors, prefix=("body",))
