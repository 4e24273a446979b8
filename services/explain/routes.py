"""HTTP entry points: parse, call a handler, return. Client, ops and auditor roles (admin too).

The request models declare what the handlers enforce (one of a prediction id or raw values, known
methods, a numeric version), so a client generated from the OpenAPI document sends what is accepted;
what depends on the champion (which features it reads) is still checked by the handler (422).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.explain.domain.model import METHODS
from services.explain.handlers import ExplainHandler, as_json

router = APIRouter(tags=["explain"])
Caller = Annotated[Principal, Depends(require_roles(Role.CLIENT, Role.OPS, Role.AUDITOR))]
DEFAULT_METHODS = ",".join(METHODS)
Method = Literal["shap", "lime", "counterfactual"]
_ONE = "(shap|lime|counterfactual)"
METHODS_PATTERN = f"^ *{_ONE} *(, *{_ONE} *)*$"
VERSION_PATTERN = "^[0-9]{1,9}$"  # MLflow numbers versions; anything else is no version
PredictionId = Annotated[str, Field(min_length=1, max_length=256, description="As on predictions.made.")]
assert get_args(Method) == METHODS  # one list of methods: the domain's
Methods = Annotated[list[Method], Field(min_length=1, description="Which explanations to compute.")]
ALL_METHODS = cast(list[Method], list(METHODS))
FeatureValue = StrictInt | StrictFloat | StrictStr | None

EXPLAIN_ERRORS = error_responses(
    404,
    410,
    422,
    502,
    503,
    504,
    s404="no such prediction, or (raw values) no champion yet or no such model_version",
    s410="the version that made the prediction is no longer in the registry",
    s422="invalid request, or feature values that do not fit the model's inputs",
    s502="the model version could not be loaded",
    s503="too many explanations running; retry",
    s504="the explanation did not finish in time",
)


class ExplainById(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: PredictionId
    methods: Methods = ALL_METHODS


class ExplainByValues(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: dict[str, FeatureValue] = Field(
        description="Raw values of every input of the model (the champion's, or `model_version`'s)."
    )
    model_version: str | None = Field(
        None,
        pattern=VERSION_PATTERN,
        description="Version to explain the values with; default: the champion.",
    )
    methods: Methods = ALL_METHODS


def _handler(request: Request) -> ExplainHandler:
    handler: ExplainHandler = request.app.state.explain
    return handler


@router.get("/explain/{prediction_id}", summary="Explain a prediction by its id", responses=EXPLAIN_ERRORS)
async def explain_prediction(
    prediction_id: Annotated[str, Path(min_length=1, max_length=256)],
    request: Request,
    caller: Caller,
    methods: Annotated[
        str, Query(pattern=METHODS_PATTERN, description="Comma-separated: shap, lime, counterfactual")
    ] = DEFAULT_METHODS,
) -> dict[str, Any]:
    chosen = tuple(m.strip() for m in methods.split(","))
    return as_json(await _handler(request).explain(prediction_id=prediction_id, methods=chosen))


@router.post(
    "/explain",
    summary="Explain a prediction id or raw feature values",
    responses=EXPLAIN_ERRORS | error_responses(400),
)
async def explain(body: ExplainById | ExplainByValues, request: Request, caller: Caller) -> dict[str, Any]:
    if isinstance(body, ExplainById):
        explanation = await _handler(request).explain(
            prediction_id=body.prediction_id, methods=tuple(body.methods)
        )
    else:
        explanation = await _handler(request).explain(
            features=body.features, model_version=body.model_version, methods=tuple(body.methods)
        )
    return as_json(explanation)


@router.get(
    "/explanations/global/{version}",
    summary="Where a version's global explanation is stored",
    responses=error_responses(404, 422, s404="no such version of the model"),
)
async def global_explanation(
    version: Annotated[str, Path(pattern=VERSION_PATTERN)], request: Request, caller: Caller
) -> dict[str, Any]:
    uri = await request.app.state.global_uri(version)
    return {"model_version": version, "artifact_uri": uri, "available": uri is not None}
