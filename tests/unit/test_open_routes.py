"""Issue 17: which routes answer without a key is decided once (servicekit/docs_ui.py), asked of
every service, and written in the README; the API's documentation pages work offline."""

from __future__ import annotations

import importlib
import re
from functools import cache

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from infra.settings import REPO_ROOT
from infra.supervisor import existing_services
from servicekit.docs_ui import ASSETS_PATH, OPEN_PATHS

SERVICES = existing_services(REPO_ROOT)


@cache
def app_of(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    return app


def answered_without_a_key(service: str) -> set[str]:
    """Every route of the app (documented or not) asked once without a key; those not refused."""
    client = TestClient(app_of(service), raise_server_exceptions=False)  # no lifespan: no broker
    open_paths = set()
    for route in iter_route_contexts(app_of(service).routes):
        if isinstance(route.original_route, Mount):  # the assets: asked in the test below
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path_format)
        for method in route.methods or ():
            response = client.request(method, path)
            if response.status_code != 401:
                open_paths.add(route.path_format)
    return open_paths


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_probes_and_the_api_description_answer_without_a_key(service: str) -> None:
    expected = {path for path in OPEN_PATHS if not path.endswith("/")}
    assert answered_without_a_key(service) == expected


@pytest.mark.parametrize("service", SERVICES)
def test_the_documentation_pages_load_nothing_from_the_internet(service: str) -> None:
    client = TestClient(app_of(service))
    for page, assets in (
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
        ("/redoc", ["redoc.standalone.js", "favicon.png"]),
    ):
        html = client.get(page).text
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), f"{service} {page} loads from afar"
        for asset in assets:
            assert f'{ASSETS_PATH}/{asset}"' in html or f"{ASSETS_PATH}/{asset}'" in html, (page, asset)
            served = client.get(f"{ASSETS_PATH}/{asset}")
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "SwaggerUIBundle" in client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js").text


def test_the_readme_names_exactly_the_open_routes() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    paragraph = readme[readme.index("HTTP routes require an API key") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`(/[a-z./-]*)`", paragraph))
    assert named == set(OPEN_PATHS), paragraph
