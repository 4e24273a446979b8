"""HTTP entry points: parse, call a handler, return. Client, ops and auditor roles (admin too)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from servicekit.auth import Principal, Role, require_roles
from services.explain.domain.model import METHODS
from services.explain.errors import NotAllowed
from services.explain.handlers import ExplainHandler, as_json

router = APIRouter(tags=["explain"])
Caller = Annotated[Principal, Depends(require_roles(Role.CLIENT, Role.OPS, Role.AUDITOR))]
DEFAULT_METHODS = ",".join(METHODS)


class ExplainBody(BaseModel):
    prediction_id: str | None = Field(
        None, max_length=128, description="A prediction seen on predictions.made."
    )
    features: dict[str, Any] | None = Field(
        None, description="Raw feature values, instead of a prediction id."
    )
    model_version: str | None = Field(
        None, max_length=64, description="Version to explain raw values with; default: the champion."
    )
    methods: list[str] = Field(list(METHODS), description="Any of shap, lime, counterfactual.")


def _handler(request: Request) -> ExplainHandler:
    handler: ExplainHandler = request.app.state.explain
    return handler


@router.get("/explain/{prediction_id}", summary="Explain a prediction by its id")
async def explain_prediction(
    prediction_id: str,
    request: Request,
    caller: Caller,
    methods: Annotated[
        str, Query(description="Comma-separated: shap, lime, counterfactual")
    ] = DEFAULT_METHODS,
) -> dict[str, Any]:
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    return as_json(await _handler(request).explain(prediction_id=prediction_id, methods=chosen))


@router.post("/explain", summary="Explain a prediction id or raw feature values")
async def explain(body: ExplainBody, request: Request, caller: Caller) -> dict[str, Any]:
    if body.model_version is not None and body.features is None:
        raise NotAllowed("model_version applies to raw feature values only")
    explanation = await _handler(request).explain(
        prediction_id=body.prediction_id,
        features=body.features,
        model_version=body.model_version,
        methods=tuple(body.methods),
    )
    return as_json(explanation)


@router.get("/explanations/global/{version}", summary="Where a version's global explanation is stored")
async def global_explanation(version: str, request: Request, caller: Caller) -> dict[str, Any]:
    uri = await request.app.state.global_uri(version)
    return {"model_version": version, "artifact_uri": uri, "available": uri is not None}
