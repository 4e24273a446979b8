"""The kit's one error root and its one HTTP mapping, on an app built by the kit."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.common import FieldError
from servicekit.errors import (
    ErrorBody,
    ServiceError,
    as_service_error,
    error_responses,
    install_error_mapping,
    invalid_request,
)


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


def test_mlflow_not_found_answers_404_in_the_one_shape_without_quoting_the_request() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    missing = MlflowException("Model Version (name=credit, version=999) not found", RESOURCE_DOES_NOT_EXIST)
    response = app_raising(missing).get("/boom")
    assert response.status_code == 404
    assert ErrorBody.model_validate(response.json()).code == "not_found" and "999" not in response.text


def test_other_mlflow_errors_stay_500s() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    response = app_raising(MlflowException("the store broke", INTERNAL_ERROR)).get("/boom")
    assert response.status_code == 500 and response.json()["code"] == "internal_error"


def test_feast_not_found_answers_404() -> None:
    from feast.errors import FeatureViewNotFoundException

    response = app_raising(FeatureViewNotFoundException("applications")).get("/boom")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_as_service_error_passes_service_errors_through_and_leaves_bugs_alone() -> None:
    gone = Gone("gone")
    assert as_service_error(gone) is gone
    assert as_service_error(KeyError("x")) is None
    assert as_service_error(LookupError("not found")) is None  # a message alone proves nothing


def test_error_responses_declare_the_one_error_shape_with_401_and_403_always() -> None:
    app = FastAPI()

    @app.get("/thing/{name}", responses=error_responses(404, 422, s404="no such thing"))
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    responses = app.openapi()["paths"]["/thing/{name}"]["get"]["responses"]
    assert set(responses) == {"200", "401", "403", "404", "422"}
    assert responses["404"]["description"] == "no such thing"
    for status in ("401", "403", "404", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status


def validating_app() -> TestClient:
    app = FastAPI()
    install_error_mapping(app)

    @app.post("/items/{item_id}")
    async def create(item_id: int, body: dict[str, int]) -> dict[str, int]:
        return body

    return TestClient(app, raise_server_exceptions=False)


def test_fastapi_validation_answers_the_one_shape_naming_fields_without_their_values() -> None:
    response = validating_app().post("/items/abc", json={"ssn": "123-45-6789"})
    assert response.status_code == 422
    body = ErrorBody.model_validate(response.json())
    assert body.code == "invalid_request"
    assert body.errors is not None
    assert {tuple(error["loc"]) for error in body.errors} == {("path", "item_id"), ("body", "ssn")}
    assert "path.item_id" in body.detail and "body.ssn" in body.detail
    assert "123-45-6789" not in response.text  # the offending value is not echoed


def test_starlette_answers_unknown_paths_methods_and_unreadable_bodies_in_the_one_shape() -> None:
    client = validating_app()
    unknown = client.get("/nowhere")
    wrong_method = client.get("/items/1")
    unreadable = client.post("/items/1", content=b"{not json", headers={"content-type": "application/json"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"  # the exception's headers are kept
    assert unreadable.status_code in (400, 422) and ErrorBody.model_validate(unreadable.json())


def test_many_invalid_fields_are_all_listed_but_the_detail_stays_short() -> None:
    errors = [{"loc": (f"f{i}",), "msg": "bad", "type": "value_error"} for i in range(9)]
    response = invalid_request(errors, prefix=("body",))
    body = ErrorBody.model_validate_json(response.body)
    assert body.errors is not None and len(body.errors) == 9
    assert "body.f4" in body.detail and "body.f5" not in body.detail and "(and 4 more)" in body.detail
