"""Issue 20: every service's OpenAPI document declares the errors its routes answer, in the one
error shape. The fuzzer (tests/e2e/test_api_fuzz.py) holds the live services to these documents;
this keeps a new route from being added without them."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import pytest

from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER, existing_services

OPEN = {"/health", "/ready"}  # probes: no key, so no 401 or 403
ERROR_SHAPE = {"$ref": "#/components/schemas/ErrorBody"}


@cache
def document(service: str) -> dict[str, Any]:
    app = importlib.import_module(f"services.{service}.app").create_app()
    openapi: dict[str, Any] = app.openapi()
    return openapi


def operations(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document(service)["paths"].items()
        for method, operation in item.items()
    ]


SERVICES = existing_services(REPO_ROOT)


def test_every_service_is_checked() -> None:
    assert set(SERVICES) >= {"ingest", "features", "training", "serving", "drift", "explain", "audit"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_keyed_route_declares_401_and_403_in_the_error_shape(service: str) -> None:
    for path, method, operation in operations(service):
        if path in OPEN:
            continue
        for status in ("401", "403"):
            declared = operation["responses"].get(status)
            assert declared is not None, f"{service} {method.upper()} {path} does not declare {status}"
            assert declared["content"]["application/json"]["schema"] == ERROR_SHAPE, (service, path, status)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_with_a_body_declares_422(service: str) -> None:
    for path, method, operation in operations(service):
        if "requestBody" in operation:
            assert "422" in operation["responses"], f"{service} {method.upper()} {path}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_declared_error_uses_the_one_shape(service: str) -> None:
    for path, method, operation in operations(service):
        for status, declared in operation["responses"].items():
            if status.startswith(("4", "5")) and path not in OPEN:
                schema = declared.get("content", {}).get("application/json", {}).get("schema")
                assert schema == ERROR_SHAPE, f"{service} {method.upper()} {path} {status}: {schema}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_says_which_roles_it_admits(service: str) -> None:
    """`x-roles` comes from the routes' own dependencies; the fuzzer tries every role's key by it."""
    for path, method, operation in operations(service):
        roles = operation.get("x-roles")
        if path in OPEN:
            assert roles == [], f"{service} {method.upper()} {path}"
        else:
            assert roles and "admin" in roles and len(roles) >= 2, f"{service} {method.upper()} {path}"
            assert f"Roles: {', '.join(roles)}." in operation["description"]


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


@pytest.mark.parametrize("service", SERVICES)
def test_every_reference_resolves_within_the_document(service: str) -> None:
    """A `#/$defs/...` left in a body schema points at the document's root, where nothing is: the
    fuzzer then skips that part of the body (it did, for POST /predict's batches)."""
    doc = document(service)
    for reference in set(_references(doc)):
        assert reference.startswith("#/"), reference
        node: Any = doc
        for part in reference.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{service}: {reference} does not resolve"
            node = node[part]


def test_every_service_folder_is_started_documented_and_fuzzed() -> None:
    """A new service is fuzzed without touching the fuzzer: `mlops up` starts, the export documents
    and tests/e2e/test_api_fuzz.py fuzzes what SERVICE_ORDER lists, so every runnable service folder
    must be listed there."""
    runnable = {path.parent.name for path in (REPO_ROOT / "services").glob("*/__main__.py")}
    assert runnable == set(SERVICE_ORDER) == set(SERVICES)
    assert {path.stem for path in (REPO_ROOT / "docs" / "openapi").glob("*.json")} == runnable
