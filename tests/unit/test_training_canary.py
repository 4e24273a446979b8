"""`POST /models/{name}/canary` and `/canary/end` with fakes: the canary alias and share tag move, a
CanaryChanged carries the reason; asking again for the running canary changes nothing; refusals
carry their code; a failed publish puts the registry back."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.envelope import Event
from contracts.events import CanaryChanged
from services.training.settings import TrainingSettings
from tests.unit import test_training_rollback
from tests.unit.test_training_rollback import promote

client = test_training_rollback.client  # the same app with fakes (a fixture)

CANARY = "/models/credit/canary"


def canary_events(client: TestClient) -> list[CanaryChanged]:
    sent: list[tuple[Event[Any], str]] = client.sent  # type: ignore[attr-defined]
    topic = TrainingSettings.model_fields["canary_topic"].default
    return [e for e, t in sent if isinstance(e, CanaryChanged) and t == topic]


def test_a_canary_starts_changes_and_ends_with_its_reasons(client: TestClient) -> None:
    promote(client, "1")
    registry = client.registry  # type: ignore[attr-defined]
    response = client.post(CANARY, json={"version": 2, "share": 0.1, "reason": "inconclusive at the gate"})
    assert response.status_code == 200, response.text
    assert (response.json()["canary"], response.json()["champion"], response.json()["replayed"]) == (
        "2",
        "1",
        False,
    )
    assert registry.others == {"canary": "2"} and registry.tags == {"canary_share": "0.1"}
    again = client.post(CANARY, json={"version": 2, "share": 0.1, "reason": "inconclusive at the gate"})
    assert again.json()["replayed"] and again.json()["event_id"] is None
    wider = client.post(CANARY, json={"version": 2, "share": 0.5, "reason": "looks fine, widen"})
    assert wider.status_code == 200 and registry.tags == {"canary_share": "0.5"}
    ended = client.post(f"{CANARY}/end", json={"reason": "enough evidence"})
    assert ended.status_code == 200 and ended.json()["canary"] == "2" and registry.others == {}
    events = canary_events(client)
    assert [(e.payload.action, e.payload.share, e.payload.reason) for e in events] == [
        ("started", 0.1, "inconclusive at the gate"),
        ("started", 0.5, "looks fine, widen"),
        ("ended", None, "enough evidence"),
    ]
    assert all(
        e.payload.champion_version == "1" and e.payload.requested_by.startswith("ops:") for e in events
    )
    assert str(events[0].event_id) == response.json()["event_id"]
    assert registry.alias == "1"  # the champion never moves


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 9, "share": 0.1, "reason": "x"}, 404, "unknown_version"),
        ({"version": 1, "share": 0.1, "reason": "x"}, 409, "is_champion"),
    ],
)
def test_refusals(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    promote(client, "1")
    response = client.post(CANARY, json=body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not canary_events(client)


def test_no_champion_and_no_canary_are_refused(client: TestClient) -> None:
    response = client.post(CANARY, json={"version": 2, "share": 0.1, "reason": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "no_champion")
    response = client.post(f"{CANARY}/end", json={"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "no_canary")
    assert client.post("/models/other/canary/end", json={"reason": "x"}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"version": 2, "share": 0, "reason": "x"},
        {"version": 2, "share": 0.51, "reason": "x"},
        {"version": 2, "share": 0.1, "reason": " "},
        {"version": 2, "share": 0.1},
        {"share": 0.1, "reason": "x"},
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(CANARY, json=body).status_code == 422


def test_a_failed_publish_puts_the_registry_back(client: TestClient) -> None:
    promote(client, "1")
    client.post(CANARY, json={"version": 2, "share": 0.1, "reason": "first"})
    use_case = client.app.state.canaries  # type: ignore[attr-defined]

    async def broken(event: Event[Any], topic: str) -> None:
        raise ConnectionError("kafka down")

    use_case.publish = broken
    answer = client.post(CANARY, json={"version": 3, "share": 0.2, "reason": "second"})
    assert answer.status_code == 503 and answer.json()["code"] == "unavailable"  # the broker is away
    registry = client.registry  # type: ignore[attr-defined]
    assert registry.others == {"canary": "2"} and registry.tags == {"canary_share": "0.1"}
