"""API keys bound to roles on every route but health/readiness; keys stored hashed, never logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import fastapi.dependencies.utils
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from servicekit.app import create_service_app
from servicekit.auth import ApiKeyRegistry, Principal, Role, hash_key, require_roles, write_dev_keys
from servicekit.signed_links import key_or_link
from tests.support import probe_settings


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    _, hashed = write_dev_keys(tmp_path, [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "api-keys.json").read_text())
    return {"hashed_file": str(hashed), **{v["role"]: v["key"] for v in plain.values()}}


@pytest.fixture
def client(keys: dict[str, str]) -> TestClient:
    settings = probe_settings("127.0.0.1:1", api_keys_file=Path(keys["hashed_file"]))
    app = create_service_app(settings, None, title="probe")

    @app.get("/predict")
    async def predict(who: Annotated[Principal, Depends(require_roles(Role.CLIENT))]) -> dict[str, str]:
        return {"name": who.name, "role": who.role.value}

    return TestClient(app)


def test_the_right_role_is_admitted(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/predict", headers={"X-API-Key": keys["client"]})
    assert response.status_code == 200
    assert response.json() == {"name": "k-client", "role": "client"}


def test_admin_is_admitted_everywhere_and_bearer_works(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/predict", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert response.status_code == 200 and response.json()["role"] == "admin"


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "missing API key"),
        ({"X-API-Key": "mlops_not-a-real-key"}, 401, "invalid API key"),
        ({"X-API-Key": ""}, 401, "missing API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "missing API key"),
        ({"X-API-Key": "x" * 10_000}, 401, "invalid API key"),
    ],
)
def test_missing_or_wrong_keys_get_401(
    client: TestClient, headers: dict[str, str], status: int, detail: str
) -> None:
    response = client.get("/predict", headers=headers)
    assert response.status_code == status
    assert detail in response.json()["detail"] and response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["producer", "ops", "auditor"])
def test_other_roles_get_403(client: TestClient, keys: dict[str, str], role: str) -> None:
    response = client.get("/predict", headers={"X-API-Key": keys[role]})
    assert response.status_code == 403
    assert f"role '{role}'" in response.json()["detail"] and response.json()["code"] == "forbidden"


def test_the_document_says_which_roles_each_route_admits(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/predict"]["get"]["x-roles"] == ["admin", "client"]
    assert paths["/metrics"]["get"]["x-roles"] == ["admin", "ops"]
    assert paths["/health"]["get"]["x-roles"] == []
    assert "Roles: admin, client." in paths["/predict"]["get"]["description"]


def test_metrics_need_ops_health_does_not(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": keys["client"]}).status_code == 403
    metrics = client.get("/metrics", headers={"X-API-Key": keys["ops"]})
    assert metrics.status_code == 200 and "mlops_http_request_seconds" in metrics.text


def test_ready_reports_failing_checks_with_503(keys: dict[str, str]) -> None:
    async def broken() -> bool:
        raise ConnectionError("db down")

    settings = probe_settings("127.0.0.1:1", api_keys_file=Path(keys["hashed_file"]))
    app = create_service_app(settings, None, title="probe", readiness_checks={"db": broken})
    response = TestClient(app).get("/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "checks": {"db": False}}


def test_keys_are_stored_hashed_and_never_logged(
    client: TestClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    hashed_text = Path(keys["hashed_file"]).read_text()
    assert keys["client"] not in hashed_text and hash_key(keys["client"]) in hashed_text
    with caplog.at_level(logging.DEBUG):
        client.get("/predict", headers={"X-API-Key": keys["client"] + "x"})
        client.get("/predict", headers={"X-API-Key": keys["client"]})
    assert keys["client"] not in caplog.text


def test_dev_keys_are_created_once_with_private_permissions(tmp_path: Path) -> None:
    plain_file, _ = write_dev_keys(tmp_path, [("a", Role.OPS)])
    first = plain_file.read_text()
    write_dev_keys(tmp_path, [("a", Role.OPS)])
    assert plain_file.read_text() == first
    assert plain_file.stat().st_mode & 0o077 == 0


def test_registry_rejects_malformed_entries() -> None:
    with pytest.raises(ValueError, match="sha256"):
        ApiKeyRegistry.from_json('[{"name": "x", "role": "ops", "sha256": "not-hex"}]')
    with pytest.raises(ValueError, match="role"):
        ApiKeyRegistry.from_json(f'[{{"name": "x", "role": "root", "sha256": "{"a" * 64}"}}]')


@pytest.mark.parametrize(("role", "status"), [("client", 200), ("ops", 403), (None, 401)])
def test_keys_are_checked_on_the_event_loop_not_in_the_thread_pool(
    client: TestClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, role: str | None, status: int
) -> None:
    """A plain `def` dependency costs every request a hand-off to a worker thread and back, which
    waits for a core under load (serving's tail in docs/benchmarks.md): no route's key check may
    need the pool, whether it admits a key or a signed link."""

    async def no_pool(*_: object, **__: object) -> None:
        raise AssertionError("a dependency ran in the thread pool")

    monkeypatch.setattr(fastapi.dependencies.utils, "run_in_threadpool", no_pool)

    @client.app.get("/signed")  # type: ignore[attr-defined]
    async def signed(
        _: Annotated[object, Depends(key_or_link(lambda _: "probe", Role.CLIENT))],
    ) -> dict[str, str]:
        return {"ok": "yes"}

    headers = {"X-API-Key": keys[role]} if role else {}
    assert client.get("/predict", headers=headers).status_code == status
    assert client.get("/signed", headers=headers).status_code == status
