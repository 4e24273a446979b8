"""Serving a canary: the reloader follows the canary alias and its share; /predict answers each query
with the canary exactly when its key falls in the share (same key, same model), marks each answer and
each PredictionMade with the version that made it, and never shadow-scores the canary's answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.serving.domain.canary import CanarySplit
from services.serving.domain.model import ModelSlot
from services.serving.handlers import PendingPrediction, Query, routing_key
from services.serving.reloader import ModelReloader
from tests.unit.test_serving_routes import make_client, queued
from tests.unit.test_serving_support import FakeRegistry, api_keys, loaded, rows


async def test_the_reloader_follows_the_canary_alias_and_share() -> None:
    registry = FakeRegistry({"1": loaded("1"), "2": loaded("2")}, {"champion": "1", "canary": "2"})
    registry.tags = {"canary_share": "0.2"}  # type: ignore[attr-defined]
    slot = ModelSlot()
    reloader = ModelReloader(slot, registry, "credit-risk", "champion", None, "canary")
    await reloader.refresh()
    assert slot.canary is not None and slot.canary[0].version == "2" and slot.canary[1].share == 0.2
    registry.tags["canary_share"] = "0.4"  # type: ignore[attr-defined]
    await reloader.refresh()
    assert slot.canary[1].share == 0.4 and registry.loads == ["1", "2"]  # no reload for a new share
    del registry.aliases["canary"]
    await reloader.refresh()
    assert slot.canary is None and slot.champion is not None and slot.champion.version == "1"


async def test_no_canary_without_the_alias_setting_or_with_a_broken_version() -> None:
    registry = FakeRegistry({"1": loaded("1"), "2": loaded("2")}, {"champion": "1", "canary": "2"})
    registry.tags = {"canary_share": "0.2"}  # type: ignore[attr-defined]
    slot = ModelSlot()
    await ModelReloader(slot, registry, "credit-risk", "champion", None, None).refresh()
    assert slot.canary is None
    registry.broken.add("2")
    await ModelReloader(slot, registry, "credit-risk", "champion", None, "canary").refresh()
    assert slot.canary is None and slot.champion is not None


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    hashed, keys = api_keys(tmp_path)
    client = make_client({"file": str(hashed), **keys}, shadow=True)
    client.app.state.slot.set_canary(loaded("9", alias="canary"), 0.5)  # type: ignore[attr-defined]
    return client


def test_each_query_goes_where_its_key_falls_and_says_which_version_answered(client: TestClient) -> None:
    split = CanarySplit("9", 0.5)
    entities = list(rows())
    answered: dict[str, str] = {}
    for start in range(0, len(entities), 5):
        batch = entities[start : start + 5]
        response = client.post("/predict", json={"instances": [{"entity_id": e} for e in batch]})
        assert response.status_code == 200, response.text
        answered |= {e: a["model_version"] for e, a in zip(batch, response.json(), strict=True)}
    assert answered == {e: "9" if split.to_canary(e) else "7" for e in entities}
    assert 10 < list(answered.values()).count("9") < 40  # both models answered some
    again = client.post("/predict", json={"entity_id": entities[0]}).json()
    assert again["model_version"] == answered[entities[0]]
    pending: list[PendingPrediction] = queued(client)
    for item in pending:
        events = item.events()
        assert events[0].payload.model_version == item.prediction.model.version
        # The canary's answers say so, for the drift service to keep them off the champion's monitors.
        assert events[0].payload.canary == (item.prediction.model.version == "9")
        assert not any(e.payload.canary for e in events[1:])  # a shadow score is never the canary's
        shadows = [e for e in events if e.payload.shadow]
        assert (item.prediction.model.version == "9") == (not shadows)  # the canary is not shadowed


def test_features_sent_route_by_their_values() -> None:
    a = Query(features={"x": 1, "y": "b"})
    assert routing_key(a) == routing_key(Query(features={"y": "b", "x": 1}))
    assert routing_key(Query(entity_id="A-1", features={"x": 1})) == "A-1"
