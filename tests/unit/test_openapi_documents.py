"""Issue 20: every service's OpenAPI document declares the errors its routes answer, in the one
error shape. The fuzzer (tests/e2e/test_api_fuzz.py) holds the live services to these documents;
this keeps a new route from being added without them."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import pytest

from infra.settings import REPO_ROOT
from infra.supervisor import existing_services

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
