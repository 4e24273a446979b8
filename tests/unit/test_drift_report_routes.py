"""The report routes of the drift service through its real app (no broker): ops and admin only, a
report made now is listed and its summary, HTML and JSON are served; unknown, pending, malformed and
path-traversing ids get a 404 or 422 and never a file outside the reports folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.drift.app import create_app
from services.drift.reports import ReportService
from tests.unit.drift_helpers import app_settings, keep, rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, dict[str, str], Path]:
    tmp_path = tmp_path_factory.mktemp("drift-routes")
    settings, keys = app_settings(tmp_path)
    keep(settings.resolved_state_path.parent, rows(300) + rows(300, start=300, shifted=True), 5000, 300)
    (tmp_path / "drift" / "secret.html").write_text("not a report")  # next to the reports folder
    return TestClient(create_app(settings)), keys, tmp_path  # no lifespan: no broker


def reports(client: TestClient) -> ReportService:
    made: ReportService = client.app.state.reports  # type: ignore[attr-defined]
    return made


def test_a_report_made_now_is_listed_and_served_to_ops_and_admin(
    setup: tuple[TestClient, dict[str, str], Path],
) -> None:
    client, keys, _ = setup
    ops = {"X-API-Key": keys["ops"]}
    asked = client.post("/reports", headers=ops)
    assert asked.status_code == 202 and asked.json()["status"] == "pending"
    report_id = asked.json()["id"]
    assert asked.headers["location"] == f"https://drift.example/reports/{report_id}"
    pending = client.get(f"/reports/{report_id}", headers=ops)
    assert pending.status_code == 404 and "queued" in pending.json()["detail"]

    made = reports(client)
    made.make(made.store.requests())  # what the worker does in its thread
    summary = client.get(f"/reports/{report_id}", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert summary.status_code == 200
    body = summary.json()
    assert body["status"] == "done" and body["trigger"] == "manual" and body["drifted_columns"] == ["amount"]
    assert body["window"]["rows"] == 500 and body["reference"]["source"] == "earliest"
    assert body["links"]["html"] == f"https://drift.example/reports/{report_id}.html"

    for path in (f"/reports/{report_id}.html", f"/reports/{report_id}/html"):
        html = client.get(path, headers=ops)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "sandbox" in html.headers["content-security-policy"] and "<html" in html.text.lower()
    evidently = client.get(f"/reports/{report_id}/json", headers=ops)
    assert evidently.status_code == 200 and evidently.json()["tests"]
    listed = client.get("/reports", headers=ops).json()
    assert [r["id"] for r in listed["reports"]] == [report_id] and listed["made"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/reports",
        f"/reports/{uuid.uuid4()}",
        f"/reports/{uuid.uuid4()}.html",
        f"/reports/{uuid.uuid4()}/json",
    ],
)
def test_report_routes_are_for_ops_and_admin_only(
    setup: tuple[TestClient, dict[str, str], Path], path: str
) -> None:
    client, keys, _ = setup
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": "not-a-key"}).status_code == 401
    for role in ("client", "auditor", "producer"):
        assert client.get(path, headers={"X-API-Key": keys[role]}).status_code == 403
    assert client.post("/reports", headers={"X-API-Key": keys["client"]}).status_code == 403


def test_an_unknown_report_is_a_404_that_says_so(setup: tuple[TestClient, dict[str, str], Path]) -> None:
    client, keys, _ = setup
    unknown = uuid.uuid4()
    for path in (f"/reports/{unknown}", f"/reports/{unknown}.html", f"/reports/{unknown}/json"):
        answer = client.get(path, headers={"X-API-Key": keys["ops"]})
        assert answer.status_code == 404 and f"no report {unknown}" in answer.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2Fsecret.html",
        "/reports/..%2F..%2Fdrift%2Fsecret/html",
        "/reports/%2E%2E/secret.html",
        "/reports/secret.html",
        "/reports/..%5Csecret.html",
        f"/reports/{uuid.uuid4()}{'a' * 300}",
        f"/reports/{str(uuid.uuid4()).upper()}",
        "/reports/drift.db/json",
    ],
)
def test_malformed_ids_never_reach_a_file(setup: tuple[TestClient, dict[str, str], Path], path: str) -> None:
    client, keys, _ = setup
    answer = client.get(path, headers={"X-API-Key": keys["ops"]})
    assert answer.status_code in (404, 422)
    assert "not a report" not in answer.text and "SQLite" not in answer.text
