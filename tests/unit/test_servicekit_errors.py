"""The kit's one error root and its one HTTP mapping, on an app built by the kit."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.common import FieldError
from servicekit.errors import ServiceError, install_error_mapping


class Gone(ServiceError):
    status = 410
    code = "gone"


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_mapping(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_service_error_answers_its_status_code_and_field_errors() -> None:
    error = FieldError(field="payload.x", code="out_of_range", message="too big")
    response = app_raising(Gone("it went away", [error])).get("/boom")
    assert response.status_code == 410
    assert response.json() == {"detail": "it went away", "code": "gone", "errors": [error.model_dump()]}


def test_a_bug_answers_a_well_formed_500_without_the_exception_text() -> None:
    response = app_raising(ValueError("secret-ssn 123-45-6789 in a message")).get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and len(body["error_id"]) == 12
    assert "123-45-6789" not in response.text


def test_every_service_root_is_the_kit_root() -> None:
    from services.audit.errors import AuditError
    from services.drift.errors import DriftError
    from services.explain.errors import ExplainError
    from services.features.errors import FeaturesError
    from services.ingest.errors import IngestError
    from services.serving.errors import ServingError
    from services.training.errors import TrainingError

    for root in (
        AuditError,
        DriftError,
        ExplainError,
        FeaturesError,
        IngestError,
        ServingError,
        TrainingError,
    ):
        assert issubclass(root, ServiceError), root
