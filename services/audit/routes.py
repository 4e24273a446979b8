"""The auditors' HTTP API. Every route needs the auditor role (admin is admitted too); every filter is
validated here and bound as a parameter in the store, so a bad value is a 4xx, never a 500.

No `from __future__ import annotations` here: the page-size bound comes from settings at build time.
"""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import StreamingResponse

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.audit.adapters.query import EventQuery
from services.audit.domain.entry import to_micros
from services.audit.errors import BadQuery
from services.audit.handlers import AuditService
from services.audit.lineage import lineage
from services.audit.settings import AuditSettings
from services.audit.verification import TrailVerifier
from services.audit.views import csv_lines, row_view

Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
# Values are ids and names: printable, bounded. A NUL or a 10 kB "id" is refused before any query.
Filter = Annotated[str | None, Query(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
Moment = Annotated[datetime | None, Query(description="ISO 8601 with a timezone, e.g. 2025-01-02T03:04:05Z")]


def service(request: Request) -> AuditService:
    audit: AuditService = request.app.state.audit
    return audit


Service = Annotated[AuditService, Depends(service)]


def build_router(settings: AuditSettings) -> APIRouter:
    router = APIRouter(tags=["audit"])
    Limit = Annotated[int, Query(ge=1, le=settings.max_page_size, description="Rows per page.")]

    @router.get(
        "/events",
        summary="Recorded events by type, entity, model version, correlation, time",
        responses={
            200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with `format=csv`"},
            **error_responses(422),
        },
    )
    def events(
        _: Auditor,
        audit: Service,
        event_type: Filter = None,
        topic: Filter = None,
        entity_id: Filter = None,
        model_name: Filter = None,
        model_version: Filter = None,
        correlation_id: Filter = None,
        prediction_id: Filter = None,
        since: Moment = None,
        until: Moment = None,
        after: Annotated[int, Query(ge=0, le=2**62, description="Rows after this sequence number.")] = 0,
        limit: Limit = settings.default_page_size,
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        since_us, until_us = _micros("since", since), _micros("until", until)
        if since_us is not None and until_us is not None and since_us > until_us:
            raise BadQuery("`since` is after `until`")
        query = EventQuery(
            event_type=event_type,
            topic=topic,
            entity_id=entity_id,
            model_name=model_name,
            model_version=model_version,
            correlation_id=correlation_id,
            prediction_id=prediction_id,
            since_us=since_us,
            until_us=until_us,
            after=after,
            limit=limit,
        )
        rows = audit.store.events(query)
        next_after = rows[-1]["seq"] if len(rows) == limit else None
        if format == "csv":
            headers = {"X-Next-After": str(next_after)} if next_after else {}
            return StreamingResponse(csv_lines(rows), media_type="text/csv", headers=headers)
        return {"items": [row_view(row) for row in rows], "next_after": next_after}

    @router.get(
        "/lineage/{prediction_id}",
        summary="Prediction -> model -> run -> data -> trigger",
        responses=error_responses(404, 422, s404="no such prediction recorded"),
    )
    def prediction_lineage(
        _: Auditor,
        audit: Service,
        prediction_id: Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")],
    ) -> dict[str, Any]:
        return lineage(audit.store, prediction_id)

    @router.get(
        "/verify",
        summary="Recompute the hash chain and hold it against the signed checkpoints and Kafka",
        description="The same verification as `mlops audit verify`. `intact` is false when any problem "
        "is found (listed in `problems`); 503 when Kafka, which holds the anchors, does not answer.",
        responses=error_responses(503, s503="Kafka, which holds the anchors, does not answer"),
    )
    def verify(_: Auditor, request: Request) -> dict[str, Any]:
        trail: TrailVerifier = request.app.state.trail
        return asdict(trail.verify())

    @router.get("/summary", summary="Rows by event type, chain length and head", responses=error_responses())
    def summary(_: Auditor, audit: Service) -> dict[str, Any]:
        return audit.summary()

    return router


def install(app: FastAPI, settings: AuditSettings) -> None:
    app.include_router(build_router(settings))


def _micros(name: str, moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise BadQuery(f"`{name}` needs a timezone (e.g. 2025-01-02T03:04:05Z)")
    return to_micros(moment)
