"""POST /train knows the last concept change training acted on: without a window it starts there and
says so; a window given is honoured (with a warning when it straddles the change); ignore_change_points
asks for all history; before any change, requests are as they always were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.events import TrainingRequested
from services.training import cli
from services.training.adapters.state import TrainingState
from services.training.domain.manual_window import ChangePoint, manual_window, straddles
from services.training.settings import TrainingSettings
from tests.unit.test_training_routes import client, keys  # noqa: F401 (fixtures)

CHANGE = ChangePoint(datetime(2026, 3, 1, 12, tzinfo=UTC), "drift-42")


def acted_on(client: TestClient, change: ChangePoint = CHANGE) -> None:  # noqa: F811
    client.app.state.training.state.save_change_point(change)  # type: ignore[attr-defined]


def last_request(client: TestClient) -> TrainingRequested:  # noqa: F811
    event, _ = client.sent[-1]  # type: ignore[attr-defined]
    assert isinstance(event, TrainingRequested)
    return event


def test_without_a_window_training_starts_at_the_last_change_acted_on(client: TestClient) -> None:  # noqa: F811
    acted_on(client)
    response = client.post("/train", json={"reason": "manual"})
    assert response.status_code == 202
    body = response.json()
    assert body["window"] == {"start": "2026-03-01T12:00:00+00:00", "end": None}
    assert body["window_note"].startswith("starts at the concept change of 2026-03-01T12:00:00+00:00")
    assert "drift event drift-42" in body["window_note"] and "ignore_change_points" in body["window_note"]
    assert "warning" not in body
    request = last_request(client)
    assert request.payload.window_start == CHANGE.at and request.payload.window_end is None
    assert client.post("/train").json()["window"]["start"] == "2026-03-01T12:00:00+00:00"  # no body either


def test_a_later_change_replaces_an_earlier_one_and_a_late_older_one_does_not(client: TestClient) -> None:  # noqa: F811
    acted_on(client)
    later = ChangePoint(CHANGE.at + timedelta(days=2), "drift-43")
    acted_on(client, later)
    acted_on(client, CHANGE)
    assert "drift event drift-43" in client.post("/train").json()["window_note"]


def test_a_window_after_the_change_is_honoured_without_a_warning(client: TestClient) -> None:  # noqa: F811
    acted_on(client)
    window = {"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}
    body = client.post("/train", json={"window": window}).json()
    assert body["window"] == {"start": "2026-03-02T00:00:00+00:00", "end": "2026-03-03T00:00:00+00:00"}
    assert "warning" not in body and "after the concept change" in body["window_note"]
    assert last_request(client).payload.window_start == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "window",
    [
        {"start": "2026-02-01T00:00:00Z"},
        {"end": "2026-03-05T00:00:00Z"},
        {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T12:00:01Z"},
        {"start": "2026-03-01T11:59:59+00:00", "end": "2026-03-01T12:00:01+00:00"},
    ],
)
def test_a_window_that_straddles_the_change_is_honoured_with_a_warning(
    client: TestClient,  # noqa: F811
    window: dict[str, str],
) -> None:
    acted_on(client)
    body = client.post("/train", json={"window": window}).json()
    assert "mixed worlds" in body["warning"] and "2026-03-01T12:00:00+00:00" in body["warning"]
    request = last_request(client)
    given_start = datetime.fromisoformat(window["start"]) if "start" in window else None
    assert request.payload.window_start == given_start  # honoured, not moved to the change


@pytest.mark.parametrize("window", [{"end": "2026-03-01T12:00:00Z"}, {"end": "2026-02-01T00:00:00Z"}])
def test_a_window_that_ends_at_or_before_the_change_does_not_straddle_it(
    client: TestClient,  # noqa: F811
    window: dict[str, str],
) -> None:
    acted_on(client)
    body = client.post("/train", json={"window": window}).json()
    assert "warning" not in body and "before the concept change" in body["window_note"]


def test_ignore_change_points_trains_on_all_history_and_warns_of_the_mix(client: TestClient) -> None:  # noqa: F811
    acted_on(client)
    body = client.post("/train", json={"ignore_change_points": True}).json()
    assert body["window"] == {"start": None, "end": None} and "all history" in body["window_note"]
    assert "mixed worlds" in body["warning"]
    request = last_request(client)
    assert request.payload.window_start is None and request.payload.window_end is None


def test_before_any_change_requests_are_as_they_were(client: TestClient) -> None:  # noqa: F811
    body = client.post("/train", json={"reason": "manual"}).json()
    assert body["window"] == {"start": None, "end": None} and "warning" not in body
    assert body["window_note"] == "no concept change acted on yet: trains on all history"
    assert last_request(client).payload.window_start is None
    body = client.post("/train", json={"ignore_change_points": True}).json()
    assert body["window"] == {"start": None, "end": None} and "warning" not in body


@pytest.mark.parametrize("flag", ["yes", 2, None, [True], {"x": 1}])
def test_a_careless_ignore_flag_is_422(client: TestClient, flag: Any) -> None:  # noqa: F811
    acted_on(client)
    assert client.post("/train", json={"ignore_change_points": flag}).status_code == 422
    assert not client.sent  # type: ignore[attr-defined]


def test_straddling_is_about_both_sides() -> None:
    at = CHANGE.at
    assert straddles(None, None, at) and straddles(at - timedelta(seconds=1), None, at)
    assert not straddles(at, None, at) and not straddles(None, at, at)
    assert manual_window(at, None, CHANGE, ignore_change_points=True).warning is None


# --- the CLI applies the same rule, with the change point from the service's state file -----------


def cli_settings(tmp_path: Path) -> TrainingSettings:
    return TrainingSettings(state_dir=tmp_path, model_name="credit")


def test_the_cli_starts_at_the_change_read_from_the_state_file(tmp_path: Path) -> None:
    settings = cli_settings(tmp_path)
    TrainingState(settings.resolved_state_path).save_change_point(CHANGE)
    args = cli.parse_args(["request"])
    window = cli.choose_window(args, settings)
    event = cli.build_request(args, "credit", window, {1: 9, 0: 4})
    assert event.payload.window_start == CHANGE.at and "drift event drift-42" in window.note
    assert event.payload.labels_watermark == {"0": 4, "1": 9}
    straddling = cli.parse_args(["request", "--window-start", "2026-01-01T00:00:00+00:00"])
    assert "mixed worlds" in (cli.choose_window(straddling, settings).warning or "")
    everything = cli.parse_args(["request", "--ignore-change-points"])
    assert (
        cli.build_request(everything, "credit", cli.choose_window(everything, settings)).payload.window_start
        is None
    )


def test_the_cli_says_when_it_could_not_see_the_change_points(tmp_path: Path) -> None:
    settings = cli_settings(tmp_path / "elsewhere")
    window = cli.choose_window(cli.parse_args(["request"]), settings)
    assert window.start is None and "not on this machine" in window.note
    assert not settings.resolved_state_path.exists()  # looking did not create a state file


def test_the_module_examples_hold() -> None:
    import doctest

    from services.training.domain import manual_window as module

    assert doctest.testmod(module).attempted > 0 and doctest.testmod(module).failed == 0
