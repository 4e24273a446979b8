"""The ops API and the CLI: roles, what a request publishes, and every bad input refused with a 4xx
(or exit code 2), never a 500 or a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.envelope import Event
from contracts.events import TrainingRequested
from servicekit.auth import Role, write_dev_keys
from services.training import cli
from services.training.app import create_app
from services.training.settings import TrainingSettings
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    return {v["role"]: v["key"] for v in plain.values()}


@pytest.fixture
def client(tmp_path: Path, keys: dict[str, str]) -> TestClient:
    settings = TrainingSettings(
        api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path, model_name="credit"
    )
    app = create_app(settings, source=FakeSource(feature_frame(2)), registry=FakeRegistry())
    sent: list[tuple[Event[Any], str]] = []

    async def publish(event: Event[Any], topic: str) -> None:
        sent.append((event, topic))

    async def watermark() -> dict[int, int]:  # the labels topic's end offsets, as the broker would say
        return {0: 41, 2: 7}

    app.state.training.publish = publish
    app.state.training.label_watermark = watermark
    client = TestClient(app)  # no lifespan: no broker
    client.headers["X-API-Key"] = keys["ops"]
    client.sent = sent  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/train"),
        ("get", "/runs/latest"),
        ("get", "/requests/00000000-0000-4000-8000-000000000000"),
        ("post", "/retraining/pause"),
        ("post", "/retraining/resume"),
        ("get", "/retraining"),
    ],
)
def test_only_ops_and_admin_may_call(
    client: TestClient, keys: dict[str, str], method: str, path: str
) -> None:
    call = getattr(client, method)
    assert call(path, headers={"X-API-Key": ""}).status_code == 401
    assert call(path, headers={"X-API-Key": "mlops_wrong"}).status_code == 401
    for role in ("producer", "client", "auditor"):
        assert call(path, headers={"X-API-Key": keys[role]}).status_code == 403
    assert call(path, headers={"X-API-Key": keys["admin"]}).status_code in (200, 202, 404)


def test_post_train_publishes_a_training_request(client: TestClient) -> None:
    body = {
        "reason": "schedule",
        "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00+01:00"},
    }
    response = client.post("/train", json=body)
    assert response.status_code == 202
    [(event, topic)] = client.sent  # type: ignore[attr-defined]
    assert isinstance(event, TrainingRequested) and topic == "training.requested"
    assert response.json() == {
        "event_id": str(event.event_id),
        "correlation_id": event.correlation_id,
        "status": "requested",
        "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-02-01T00:00:00+01:00"},
        "window_note": "no concept change acted on yet: trains on the window given",
    }
    assert event.payload.labels_watermark == {"0": 41, "2": 7}  # where the labels topic ended
    assert event.payload.model_name == "credit" and event.payload.reason == "schedule"
    assert event.payload.requested_by == "ops:k-ops" and event.payload.window_start is not None
    assert client.post("/train").status_code == 202  # no body: a manual request over all the data
    assert client.sent[1][0].payload.reason == "manual"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "drift"},  # drift requests come from drift events, not from people
        {"reason": "because"},
        {"reason": 3},
        {"window": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        {"window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        {"window": {"start": "2026-01-01T00:00:00"}},  # no timezone
        {"window": {"start": "yesterday"}},
        {"window": "all"},
        {"model_name": "other"},  # unknown fields are refused
        [1, 2],
    ],
)
def test_bad_train_bodies_are_422(client: TestClient, body: Any) -> None:
    response = client.post("/train", json=body)
    assert response.status_code == 422
    assert not client.sent  # type: ignore[attr-defined]


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post("/train", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_latest_run_is_404_before_any_run_then_the_outcome(client: TestClient) -> None:
    response = client.get("/runs/latest")
    assert response.status_code == 404 and "no training run" in response.json()["detail"]
    client.app.state.training.state.save_run("r1", "rejected", {"status": "rejected", "reasons": ["x"]})  # type: ignore[attr-defined]
    assert client.get("/runs/latest").json() == {"status": "rejected", "reasons": ["x"]}


def test_a_requests_outcome_is_404_until_its_run_finished_then_that_runs_outcome(client: TestClient) -> None:
    requested = client.post("/train", json={"reason": "schedule"}).json()["event_id"]
    response = client.get(f"/requests/{requested}")
    assert response.status_code == 404 and response.json()["code"] == "run_not_finished"
    state = client.app.state.training.state  # type: ignore[attr-defined]
    state.save_run(requested, "rejected", {"request_id": requested, "status": "rejected", "reasons": ["x"]})
    state.save_run("a-later-run", "promoted", {"request_id": "a-later-run", "status": "promoted"})
    assert client.get(f"/requests/{requested}").json()["reasons"] == ["x"]  # this request's, not the latest
    assert client.get("/runs/latest").json()["status"] == "promoted"


@pytest.mark.parametrize("request_id", ["latest", "r1", "00000000-0000-4000-8000-00000000000Z"])
def test_a_request_id_that_is_not_an_event_id_is_422(client: TestClient, request_id: str) -> None:
    assert client.get(f"/requests/{request_id}").status_code == 422


def test_pause_and_resume_show_in_the_retraining_status(client: TestClient) -> None:
    status = client.get("/retraining").json()
    assert status["paused"] is False and status["decisions"] == []
    assert status["policy"]["retrain_on_drift"] is True and status["policy"]["min_new_labels"] == 600
    assert status["waiting"] is None  # no drift retrain is waiting for labels
    paused = client.post("/retraining/pause", json={"note": "incident 42"})
    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["changed_by"] == "ops:k-ops"
    assert client.get("/retraining").json()["note"] == "incident 42"
    assert client.post("/train").status_code == 202  # manual training still works while paused
    assert client.post("/retraining/resume").json()["paused"] is False
    assert client.get("/retraining").json()["paused"] is False


@pytest.mark.parametrize("body", [{"reason": "x"}, {"note": 3}, {"note": "x" * 501}, [1], "pause"])
@pytest.mark.parametrize("path", ["/retraining/pause", "/retraining/resume"])
def test_bad_pause_bodies_are_422(client: TestClient, path: str, body: Any) -> None:
    assert client.post(path, json=body).status_code == 422
    assert client.get("/retraining").json()["paused"] is False


# --- CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["train"],
        ["request", "--reason", "drift"],
        ["request", "--window-start", "yesterday"],
        ["request", "--window-start", "2026-01-01T00:00:00"],
        ["request", "--window-start", "2026-02-01T00:00:00Z", "--window-end", "2026-01-01T00:00:00Z"],
        ["request", "--timeout", "0"],
        ["request", "--unknown"],
    ],
)
def test_bad_cli_flags_exit_2_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and "usage:" in capsys.readouterr().err


def test_cli_builds_the_request() -> None:
    args = cli.parse_args(
        [
            "request",
            "--reason",
            "schedule",
            "--window-start",
            "2026-01-01T00:00:00+00:00",
            "--requested-by",
            "cron",
        ]
    )
    event = cli.build_request(args, "credit")
    assert event.payload.reason == "schedule" and event.payload.requested_by == "cron"
    assert event.payload.window_start is not None and event.payload.window_end is None


def test_cli_with_an_unreachable_broker_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(["request", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "5"])
    assert code == 2 and "could not publish" in capsys.readouterr().err
