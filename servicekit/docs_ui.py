"""Every service's API documentation pages, served by the service itself: they work offline.

FastAPI's `/docs` and `/redoc` load Swagger UI and ReDoc from public CDNs (and fonts from Google),
so on a machine without internet they are blank pages. The assets ship in the `fastapi-offline`
package (pinned in the lock); the kit serves them under `/docs-assets/` and renders FastAPI's own
pages pointing there.

Which routes are open, decided here once: the probes (`/health`, `/ready`) and the API's description
(`/openapi.json`, `/docs`, `/redoc`, `/docs-assets/...`). The description says what the routes
take and answer, and which roles they admit; it holds no data. Every other route needs a key
(`tests/unit/test_open_routes.py` asks each service, and holds the README to this list). A route a
browser may open with a signed link (servicekit/signed_links.py) is not open: without a key or a
valid link it answers 401 too.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
OPEN_PATHS = ("/health", "/ready", "/openapi.json", "/docs", "/redoc", f"{ASSETS_PATH}/")
_ASSETS = files("fastapi_offline") / "static"


def install_docs(app: FastAPI, title: str) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from local assets (the app is created with
    `docs_url=None, redoc_url=None`)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(_ASSETS)), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        """The document's URL and the assets' folder, behind a proxy's root path if any."""
        root = str(request.scope.get("root_path", ""))
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_PATH}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        document, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=document,
            title=f"{title} - API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            # No call to the public validator; the key typed in "Authorize" survives a reload.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        document, assets = urls(request)
        return get_redoc_html(
            openapi_url=document,
            title=f"{title} - API",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
