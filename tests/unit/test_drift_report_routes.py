"""The report routes of the drift service through its real app (no broker): ops and admin only, a
report made now is listed and its summary, HTML and JSON are served; unknown, pending, malformed and
path-traversing ids get a 404 or 422 and never a file outside the reports folder."""

from __future__ import annotations

import json
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


WINDOW = {"start": "2026-01-01T01:05:00+01:00", "end": "2026-01-01T00:10:00Z"}  # T0 + 300 s .. + 600 s


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}, "timezone"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end must be after start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00+01:00"}, "end must be after start"),
        ({"start": "2026-01-01T00:00:00Z"}, "give both start and end"),
        ({**WINDOW, "model": "x"}, "Extra inputs are not permitted"),
        ({"start": "yesterday", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "0001-01-01T00:00:00+05:00", "end": "2026-01-01T00:00:00Z"}, "years 1 to 9999"),
        (["2026-01-01T00:00:00Z"], "valid dictionary"),
        ("not json at all", "JSON decode error"),
    ],
)
def test_a_bad_report_window_is_a_422_that_says_why_and_queues_nothing(
    setup: tuple[TestClient, dict[str, str], Path], body: object, reason: str
) -> None:
    client, keys, _ = setup
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {"X-API-Key": keys["ops"], "Content-Type": "application/json"}
    answer = client.post("/reports", content=raw, headers=headers)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert reason in answer.json()["detail"]
    assert reports(client).store.requests() == []


def test_a_report_of_a_window_covers_its_records_and_no_body_keeps_the_latest(
    setup: tuple[TestClient, dict[str, str], Path],
) -> None:
    client, keys, _ = setup
    ops = {"X-API-Key": keys["ops"]}
    windowed = client.post("/reports", json=WINDOW, headers=ops)
    assert windowed.status_code == 202
    asked = {"start": "2026-01-01T00:05:00+00:00", "end": "2026-01-01T00:10:00+00:00"}  # in UTC
    assert windowed.json()["window"] == asked
    plain = [
        client.post("/reports", headers=ops),
        client.post("/reports", content=b"", headers=ops | {"Content-Type": "application/json"}),
        client.post("/reports", json={}, headers=ops),
    ]
    assert [p.status_code for p in plain] == [202] * 3 and [p.json()["window"] for p in plain] == [None] * 3
    made = reports(client)
    assert [p.window is None for p in made.store.requests()] == [False, True, True, True]
    made.make(made.store.requests())  # the window alone
    made.make(made.store.requests())  # the three without one, coalesced
    summary = client.get(f"/reports/{windowed.json()['id']}", headers=ops).json()
    assert summary["window"]["requested"] == asked and summary["window"]["rows"] == 300
    assert summary["window"]["start"] == asked["start"] and summary["drifted_columns"] == ["amount"]
    latest = client.get(f"/reports/{plain[1].json()['id']}", headers=ops).json()
    assert latest["id"] == plain[0].json()["id"] and len(latest["coalesced"]) == 2
    assert latest["window"]["rows"] == 500 and "requested" not in latest["window"]
