"""HTTP face of the drift service (ops role; admin admitted): the state of every monitor, the
recommendation on a canary, and the Evidently reports (list, summary, HTML, Evidently JSON, make one
now). A report's HTML also opens with a signed link (browser.py makes them: a browser cannot send
the key)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from servicekit.signed_links import SignedLink, key_or_link
from services.drift.errors import UnknownMonitor
from services.drift.handlers import DriftService
from services.drift.reports import ReportService

Ops = Annotated[Principal, Depends(require_roles(Role.OPS))]
router = APIRouter(tags=["drift"])


async def service(request: Request) -> DriftService:
    drift: DriftService = request.app.state.drift
    standby = request.app.state.standby
    if standby is not None and standby.role == "standby":  # it answers from what the active one saved
        await drift.reload()
    return drift


Service = Annotated[DriftService, Depends(service)]


def report_service(request: Request) -> ReportService:
    reports: ReportService = request.app.state.reports
    return reports


Reports = Annotated[ReportService, Depends(report_service)]
# Report ids are UUIDs (a drift event's id, or one made for a schedule or a request): nothing else,
# so no path outside the reports folder can be named.
REPORT_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ReportId = Annotated[str, Path(pattern=REPORT_ID)]
# The HTML runs Evidently's scripts; sandboxed, it runs in an origin of its own.
NO_REPORT = error_responses(404, 422, s404="no such report, or not made yet")
# Declared as content, not as `response_class`: FastAPI would file the JSON errors under text/html too.
HTML_REPORT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Evidently's HTML page", "content": {"text/html": {}}},
    **NO_REPORT,
}
# A signed link's signature is in the URL: no cache keeps it, no referrer carries it away.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
HTML_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts",
    "X-Content-Type-Options": "nosniff",
    **PRIVATE_HEADERS,
}


def report_resource(report_id: str) -> str:
    """What a signed link to one report's HTML names (services/drift/browser.py makes them)."""
    return f"drift:report:{report_id}"


def _linked_report(request: Request) -> str:
    # Read raw: the path is validated after this dependency, and a malformed id matches no link.
    return report_resource(str(request.path_params.get("report_id", "")))


OpsOrLink = Annotated[Principal | SignedLink, Depends(key_or_link(_linked_report, Role.OPS))]


@router.get(
    "/detectors",
    summary="State of every drift monitor, of the label join and of each version's online quality (ops role)",
    responses=error_responses(),
)
async def detectors(_: Ops, drift: Service) -> dict[str, Any]:
    return drift.detectors()


Version = Annotated[str, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="A model version.")]


@router.get(
    "/canary",
    summary="Promote, keep or roll back a canary: its online accuracy against the champion's (ops role)",
    responses=error_responses(404, 422, s404="no version named and none seen serving as a canary"),
)
async def canary(
    _: Ops,
    drift: Service,
    canary: Version | None = None,
    champion: Version | None = None,
    min_labels: Annotated[int, Query(ge=10, le=100_000)] = 100,
    confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
) -> dict[str, Any]:
    """Newcombe's interval of accuracy(canary) - accuracy(champion) on each version's last labelled
    predictions: above zero, promote; below, roll back; straddling, keep it running; with fewer than
    `min_labels` labelled predictions on either side, not enough labels. Nothing is done automatically.
    Without `canary`, the last version whose predictions came marked as a canary's; without
    `champion`, the version the champion's monitors follow (both in the answer)."""
    return drift.canary_recommendation(canary, champion, min_labels, confidence)


@router.get(
    "/detectors/{name}",
    summary="State of one monitor, e.g. data:credit_amount (ops role)",
    responses=error_responses(404, 422, s404="no monitor of that name"),
)
async def detector(name: str, _: Ops, drift: Service) -> dict[str, Any]:
    monitors: dict[str, Any] = drift.detectors()["monitors"]
    if name not in monitors:
        raise UnknownMonitor(f"no monitor named {name!r}")
    return {"name": name, **monitors[name]}


@router.get(
    "/reports",
    summary="Evidently reports, newest first, with their summaries (ops role)",
    responses=error_responses(422),
)
async def reports(_: Ops, made: Reports, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    return await asyncio.to_thread(made.listing, limit)


class ReportWindow(BaseModel):
    """The event times a report covers: [start, end). Neither (or no body): the latest records."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = Field(None, description="From this event time (inclusive), with its zone.")
    end: AwareDatetime | None = Field(None, description="...to this event time (exclusive), with its zone.")

    @model_validator(mode="after")
    def _both_in_utc_and_ordered(self) -> ReportWindow:
        if self.start is None or self.end is None:
            if self.start is not None or self.end is not None:
                raise ValueError("give both start and end, or neither (the latest records)")
            return self
        try:  # in UTC, as the summary shows them; year 1 with a positive offset has no UTC time
            self.start, self.end = self.start.astimezone(UTC), self.end.astimezone(UTC)
        except OverflowError:
            raise ValueError("start and end must be times in years 1 to 9999 in UTC") from None
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def bounds(self) -> tuple[datetime, datetime] | None:
        return None if self.start is None or self.end is None else (self.start, self.end)


@router.post(
    "/reports",
    status_code=202,
    summary="Make a report now, of the latest records or of a window of event times [start, end) (ops role)",
    responses=error_responses(
        400, 422, s422="a time without its zone, end not after start, or unknown fields"
    ),
)
async def make_report(_: Ops, made: Reports, window: ReportWindow | None = None) -> JSONResponse:
    """Without a body, the latest `DRIFT_REPORT_WINDOW` clean records; with `{"start": ..., "end": ...}`
    (ISO 8601 with a zone), every kept clean record whose event time is in [start, end). Older records
    may have been pruned: the summary's `window` says how many rows it held and whether some may be
    missing. A window that holds no kept record makes a `failed` report saying so."""
    bounds = window.bounds() if window else None
    report_id = await made.request("manual", bounds)
    asked = bounds and {"start": bounds[0].isoformat(), "end": bounds[1].isoformat()}
    body = {"id": report_id, "status": "pending", "window": asked, "links": made.links(report_id)}
    return JSONResponse(body, status_code=202, headers={"Location": made.url(report_id)})


@router.get(
    "/reports/{report_id}.html",
    summary="A report's Evidently HTML (ops role, or a signed link from GET /reports/links)",
    responses=HTML_REPORT,
)
async def report_html(report_id: ReportId, _: OpsOrLink, made: Reports) -> FileResponse:
    path = await asyncio.to_thread(made.file, report_id, ".html")
    return FileResponse(path, media_type="text/html", headers=HTML_HEADERS)


@router.get(
    "/reports/{report_id}/html",
    summary="A report's Evidently HTML (ops role, or a signed link from GET /reports/links)",
    responses=HTML_REPORT,
)
async def report_html_too(report_id: ReportId, _: OpsOrLink, made: Reports) -> FileResponse:
    return await report_html(report_id, _, made)


@router.get(
    "/reports/{report_id}/json",
    summary="A report's Evidently JSON: metrics and tests (ops role)",
    responses=NO_REPORT,
)
async def report_json(report_id: ReportId, _: Ops, made: Reports) -> FileResponse:
    path = await asyncio.to_thread(made.file, report_id, ".json")
    return FileResponse(path, media_type="application/json")


@router.get("/reports/{report_id}", summary="A report's summary and links (ops role)", responses=NO_REPORT)
async def report(report_id: ReportId, _: Ops, made: Reports) -> dict[str, Any]:
    return await asyncio.to_thread(made.get, report_id)


def install(app: FastAPI) -> None:
    app.include_router(router)
