"""Reports in a browser: signed links (servicekit/signed_links.py) to the reports' index page and to
each report's HTML, for ops who paste them into a browser (which cannot send the `X-API-Key` header).

- `GET /reports/links` (ops key) answers the signed URL of the index page and, with `report=<id>`,
  of that report's HTML; `ttl_s` sets how long they open (default `DRIFT_LINK_TTL_S`, at most 24 h).
- `GET /reports/index.html?expires=..&signature=..` (or an ops key): the index page. Its links to
  the reports expire with the page's own link, so holding the index never extends access.
- `GET /reports/{id}.html` takes an ops key or a link signed for that report (see routes.py).

A link names its resource: `drift:report:<id>` or `drift:reports-index`; one never opens another.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from servicekit.auth import Principal, Role
from servicekit.errors import error_responses
from servicekit.signed_links import MAX_TTL_S, LinkSigner, SignedLink, expiry_iso, key_or_link
from services.drift.domain.report_index import INDEX_CSP, render_index
from services.drift.routes import PRIVATE_HEADERS, REPORT_ID, Ops, Reports, report_resource

INDEX_RESOURCE = "drift:reports-index"
INDEX_PATH = "/reports/index.html"
INDEX_LIMIT = 200
INDEX_HEADERS = {**PRIVATE_HEADERS, "Content-Security-Policy": INDEX_CSP, "X-Content-Type-Options": "nosniff"}

OpsOrIndexLink = Annotated[Principal | SignedLink, Depends(key_or_link(lambda _: INDEX_RESOURCE, Role.OPS))]
router = APIRouter(tags=["drift"])


def signer(request: Request) -> LinkSigner:
    found: LinkSigner = request.app.state.link_signer
    return found


Signer = Annotated[LinkSigner, Depends(signer)]


@router.get(
    "/reports/links",
    summary="Signed browser links to the reports' index page and, with `report`, to one report (ops role)",
    responses=error_responses(404, 422, s404="no such report, or not made yet"),
)
async def links(
    _: Ops,
    made: Reports,
    sign: Signer,
    report: Annotated[str | None, Query(pattern=REPORT_ID, description="A report's id.")] = None,
    ttl_s: Annotated[int | None, Query(ge=30, le=MAX_TTL_S, description="Seconds the links open.")] = None,
) -> JSONResponse:
    index = sign.sign(INDEX_RESOURCE, ttl_s)
    body: dict[str, Any] = {
        "index": f"{made.base_url}{INDEX_PATH}?{index.query}",
        "expires_at": index.expires_at,
    }
    if report is not None:
        await asyncio.to_thread(made.file, report, ".html")  # a link only to a page that exists
        link = sign.sign(report_resource(report), expires=index.expires)
        body["report"] = f"{made.base_url}/reports/{report}.html?{link.query}"
    return JSONResponse(body, headers=PRIVATE_HEADERS)


@router.get(
    INDEX_PATH,
    summary="The reports as a page for a browser, newest first, each with a signed link "
    "(ops role, or a signed link from GET /reports/links)",
    responses={200: {"description": "HTML page", "content": {"text/html": {}}}, **error_responses(422)},
)
async def index_page(admitted: OpsOrIndexLink, made: Reports, sign: Signer) -> HTMLResponse:
    listing = await asyncio.to_thread(made.listing, INDEX_LIMIT)
    expires = admitted.expires if isinstance(admitted, SignedLink) else sign.sign(INDEX_RESOURCE).expires

    def href(report_id: str) -> str:  # relative: resolves under /reports/, behind any proxy prefix
        return f"{report_id}.html?{sign.sign(report_resource(report_id), expires=expires).query}"

    page = render_index(listing["reports"], href, title="Drift reports", expires_at=expiry_iso(expires))
    return HTMLResponse(page, headers=INDEX_HEADERS)


def install(app: FastAPI) -> None:
    """Before routes.py's: `/reports/links` and `/reports/index.html` would match its `{report_id}`."""
    app.include_router(router)
