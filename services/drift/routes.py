"""HTTP face of the drift service (ops role; admin admitted): the state of every monitor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from servicekit.auth import Principal, Role, require_roles
from services.drift.errors import DriftError, UnknownMonitor
from services.drift.handlers import DriftService

Ops = Annotated[Principal, Depends(require_roles(Role.OPS))]
router = APIRouter(tags=["drift"])


def service(request: Request) -> DriftService:
    drift: DriftService = request.app.state.drift
    return drift


Service = Annotated[DriftService, Depends(service)]


@router.get("/detectors", summary="State of every drift monitor and of the label join (ops role)")
async def detectors(_: Ops, drift: Service) -> dict[str, Any]:
    return drift.detectors()


@router.get("/detectors/{name}", summary="State of one monitor, e.g. data:credit_amount (ops role)")
async def detector(name: str, _: Ops, drift: Service) -> dict[str, Any]:
    monitors: dict[str, Any] = drift.detectors()["monitors"]
    if name not in monitors:
        raise UnknownMonitor(f"no monitor named {name!r}")
    return {"name": name, **monitors[name]}


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(DriftError)
    async def drift_error(_: Request, exc: DriftError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
