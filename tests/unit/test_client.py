"""mlops_client against `httpx.MockTransport`: the platform's error body becomes `MlopsError` with its
code, idempotent calls are retried on a reset connection and nothing else is, each role sends its own
key to its own services, and the typed answers are the shapes serving's OpenAPI document publishes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER
from mlops_client import Auditor, Client, MlopsError, Ops, Producer, Service, connect, models

Handler = Callable[[httpx.Request], httpx.Response]
URLS = {name: f"http://{name}.test" for name in SERVICE_ORDER}
PREDICTION = {
    "prediction_id": "p-1", "score": 0.25, "decision": "approve",
    "model_name": "credit", "model_version": "3",
}  # fmt: skip


class Recorder:
    """A transport that answers from `handler` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def service(handler: Handler, attempts: int = 3) -> tuple[Service, Recorder]:
    recorder = Recorder(handler)
    return Service(
        "http://svc.test", "k", attempts=attempts, backoff_s=0, transport=recorder.transport()
    ), recorder


def failing_then(error: type[httpx.TransportError], failures: int, answer: httpx.Response) -> Handler:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error("connection reset", request=request)
        return answer

    return handler


def test_the_error_body_becomes_an_mlops_error_with_its_code() -> None:
    body = {"detail": "role 'client' may not call this; needs admin, ops", "code": "forbidden"}
    svc, _ = service(lambda _: httpx.Response(403, json=body))

    with pytest.raises(MlopsError) as caught:
        svc.get("/detectors")

    error = caught.value
    assert (error.status, error.code, error.detail) == (403, "forbidden", body["detail"])
    assert error.method == "GET" and error.url == "http://svc.test/detectors" and not error.retryable


def test_per_field_reasons_and_an_error_id_are_kept() -> None:
    fields = [{"loc": ["body", "label"], "msg": "bad", "type": "literal_error"}]
    svc, _ = service(lambda _: httpx.Response(422, json={"detail": "invalid", "code": "invalid_request",
                                                            "errors": fields}))  # fmt: skip
    with pytest.raises(MlopsError) as caught:
        svc.post("/labels", {"label": "maybe"})
    assert caught.value.code == "invalid_request" and caught.value.errors == fields

    svc, _ = service(lambda _: httpx.Response(500, json={"detail": "internal error", "code": "internal_error",
                                                            "error_id": "abc123"}))  # fmt: skip
    with pytest.raises(MlopsError) as caught:
        svc.get("/x")
    assert caught.value.error_id == "abc123"


def test_an_answer_that_is_not_the_platforms_shape_is_still_an_mlops_error() -> None:
    svc, _ = service(lambda _: httpx.Response(502, text="<html>Bad Gateway</html>"))

    with pytest.raises(MlopsError) as caught:
        svc.get("/model")

    assert caught.value.status == 502 and caught.value.code == "http_502" and caught.value.retryable


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError])
def test_a_get_is_retried_after_a_reset_connection_then_succeeds(error: type[httpx.TransportError]) -> None:
    svc, recorder = service(failing_then(error, 2, httpx.Response(200, json={"ok": True})))

    assert svc.get("/summary") == {"ok": True}
    assert len(recorder.requests) == 3


def test_retries_are_bounded_and_end_in_an_mlops_error() -> None:
    svc, recorder = service(failing_then(httpx.ReadError, 99, httpx.Response(200)), attempts=3)

    with pytest.raises(MlopsError) as caught:
        svc.get("/summary")

    assert len(recorder.requests) == 3
    assert caught.value.status is None and caught.value.code == "unreachable" and caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.ReadError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 503])
def test_an_answer_is_never_retried(status: int) -> None:
    svc, recorder = service(lambda _: httpx.Response(status, json={"detail": "no", "code": "c"}))

    with pytest.raises(MlopsError):
        svc.get("/model")

    assert len(recorder.requests) == 1


def test_a_post_is_retried_only_when_nothing_was_sent() -> None:
    svc, recorder = service(failing_then(httpx.ConnectError, 1, httpx.Response(202, json={"id": 1})))
    assert svc.post("/train", {}) == {"id": 1} and len(recorder.requests) == 2

    svc, recorder = service(failing_then(httpx.ReadError, 1, httpx.Response(202, json={"id": 1})))
    with pytest.raises(MlopsError, match="unreachable"):
        svc.post("/train", {})  # it may have been done: asking again could train twice
    assert len(recorder.requests) == 1


def routes(request: httpx.Request) -> httpx.Response:
    """Just enough of each service for one call per role."""
    answers: dict[tuple[str, str], Any] = {
        ("ingest.test", "/records"): {"accepted": 1, "records": [{"landed": True, "event_id": "e"}]},
        ("serving.test", "/predict"): PREDICTION,
        ("serving.test", "/labels"): {"event_id": "e", "prediction_id": "p-1", "entity_id": "A-1"},
        ("drift.test", "/detectors"): {"monitors": {"data:age": {}}, "online_quality": [
            {"model": "credit", "version": "3", "labelled": 10.0, "accuracy": 0.9}]},
        ("training.test", "/runs/latest"): None,
        ("audit.test", "/verify"): {"intact": True, "checked": 5, "head_hash": "ab"},
    }  # fmt: skip
    answer = answers[(request.url.host, request.url.path)]
    if answer is None:
        return httpx.Response(404, json={"detail": "no training run has finished yet", "code": "no_run_yet"})
    return httpx.Response(202 if request.method == "POST" else 200, json=answer)


def test_each_role_sends_its_own_key_to_its_own_services() -> None:
    recorder = Recorder(routes)
    options: dict[str, Any] = {"transport": recorder.transport(), "backoff_s": 0}
    producer = Producer("producer-key", URLS, **options)
    client = Client("client-key", URLS, **options)
    ops, auditor = Ops("ops-key", URLS, **options), Auditor("auditor-key", URLS, **options)

    assert producer.send([{"application_id": "A-1"}]).records[0].landed
    assert producer.label("p-1", "good").entity_id == "A-1"
    prediction = client.predict("A-1")
    assert 0 <= prediction.score <= 1 and prediction.model_version == "3"
    assert ops.online_quality()[0].accuracy == 0.9 and ops.latest_run() is None
    assert auditor.verify().intact

    seen = [(r.url.host.removesuffix(".test"), r.url.path, r.headers["X-API-Key"]) for r in recorder.requests]
    assert seen == [
        ("ingest", "/records", "producer-key"), ("serving", "/labels", "producer-key"),
        ("serving", "/predict", "client-key"), ("drift", "/detectors", "ops-key"),
        ("training", "/runs/latest", "ops-key"), ("audit", "/verify", "auditor-key"),
    ]  # fmt: skip
    assert json.loads(recorder.requests[2].content) == {"entity_id": "A-1"}


def test_a_role_names_the_urls_it_lacks() -> None:
    with pytest.raises(ValueError, match="needs the URL of explain"):
        Client("k", {"serving": "http://serving.test"})


def test_connect_reads_the_local_stacks_keys_and_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {
        f"dev-{role}": {"role": role, "key": f"{role}-key"}
        for role in ("producer", "client", "ops", "auditor")
    }
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "api-keys.json").write_text(json.dumps(keys))
    monkeypatch.setenv("MLOPS_FIRST_SERVICE_PORT", "19000")

    with connect(tmp_path) as stack:
        serving = stack.client.services["serving"]
        assert serving.base_url == f"http://127.0.0.1:{19000 + SERVICE_ORDER.index('serving')}"
        assert serving._http.headers["X-API-Key"] == "client-key"
        assert stack.auditor.services["audit"]._http.headers["X-API-Key"] == "auditor-key"

    with pytest.raises(FileNotFoundError, match="is the stack up"):
        connect(tmp_path / "elsewhere")


def test_from_env_takes_a_deployments_key_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_CLIENT_API_KEY", "secret")
    monkeypatch.setenv("MLOPS_CLIENT_AUDIT_URL", "https://audit.example/")

    with Auditor.from_env() as auditor:
        assert auditor.services["audit"].base_url == "https://audit.example"
        assert auditor.services["audit"]._http.headers["X-API-Key"] == "secret"


@pytest.mark.parametrize(
    ("model", "published"),
    [(models.Prediction, "PredictionOut"), (models.LabelAccepted, "LabelAccepted"),
     (models.ModelInfo, "ModelInfo"), (models.ModelStatus, "ModelStatus")],
)  # fmt: skip
def test_servings_answers_are_the_shapes_its_openapi_document_publishes(
    model: type[Any], published: str
) -> None:
    document = json.loads((REPO_ROOT / "docs" / "openapi" / "serving.json").read_text())
    schema = document["components"]["schemas"][published]
    assert set(model.model_fields) == set(schema["properties"])
    assert {n for n, f in model.model_fields.items() if f.is_required()} == set(schema.get("required", []))


def test_queries_and_bodies_are_what_the_routes_take() -> None:
    page: dict[str, Any] = {"items": [], "next_after": None}
    two = [PREDICTION, PREDICTION]
    recorder = Recorder(lambda r: httpx.Response(200, json=page if r.url.host == "audit.test" else two))
    options: dict[str, Any] = {"transport": recorder.transport(), "backoff_s": 0}
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    Auditor("k", URLS, **options).events(event_type="ModelPromoted", since=since, limit=10)
    batch = Client("k", URLS, **options).predict_many(["A-1", {"credit_amount": 2500}])

    assert dict(recorder.requests[0].url.params) == {
        "event_type": "ModelPromoted", "since": "2026-01-02T03:04:05+00:00", "after": "0", "limit": "10",
    }  # fmt: skip
    assert json.loads(recorder.requests[1].content) == {
        "instances": [{"entity_id": "A-1"}, {"features": {"credit_amount": 2500}}]
    }
    assert [p.model_version for p in batch] == ["3", "3"]
    with pytest.raises(ValueError, match="timezone"):
        Auditor("k", URLS, **options).events(since=datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="exactly one"):
        Client("k", URLS, **options).predict()


def test_ops_asks_for_signed_report_links_with_only_the_parameters_given() -> None:
    links = {
        "index": "http://drift.test/reports/index.html?expires=9&signature=ab",
        "expires_at": "2026-12-04T21:00:00Z",
    }
    recorder = Recorder(
        lambda request: httpx.Response(
            200,
            json=links
            | (
                {"report": "http://drift.test/reports/r.html?expires=9&signature=cd"}
                if "report" in request.url.params
                else {}
            ),
        )
    )
    ops = Ops("ops-key", URLS, transport=recorder.transport(), backoff_s=0)

    assert ops.report_links().report is None
    answer = ops.report_links("r", ttl_s=60)
    assert answer.report is not None and answer.index == links["index"]
    assert [dict(r.url.params) for r in recorder.requests] == [{}, {"report": "r", "ttl_s": "60"}]
    assert {r.url.path for r in recorder.requests} == {"/reports/links"}
