"""GET /canary on the drift service: the recommendation from each version's labelled predictions in
the online quality windows (clear win, clear loss, too few labels), for ops only."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from servicekit.auth import Role, write_dev_keys
from services.drift.app import create_app
from services.drift.domain.quality import RollingQuality
from services.drift.settings import DriftSettings


def labelled(correct: int, wrong: int) -> RollingQuality:
    quality = RollingQuality(1000)
    for i in range(correct + wrong):
        truth = i % 2 == 0
        quality.add(0.9 if truth else 0.1, truth, truth if i < correct else not truth)
    return quality


def test_the_canary_recommendation(tmp_path: Path) -> None:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    settings = DriftSettings(api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path)
    app = create_app(settings)
    quality = app.state.drift.watch.quality
    model = settings.model_name
    quality[(model, "7")] = labelled(350, 150)  # champion: 70%
    quality[(model, "8")] = labelled(180, 20)  # a better canary: 90%
    quality[(model, "9")] = labelled(100, 100)  # a worse one: 50%
    quality[(model, "10")] = labelled(40, 0)  # perfect, on 40 labels
    client = TestClient(app)  # no lifespan: no broker
    client.headers["X-API-Key"] = keys["ops"]

    def advice(canary: str) -> dict[str, object]:
        response = client.get("/canary", params={"canary": canary, "champion": "7"})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    better, worse, few = advice("8"), advice("9"), advice("10")
    assert better["action"] == "promote" and better["canary"] == {
        "version": "8",
        "labelled": 200,
        "accuracy": 0.9,
    }
    assert worse["action"] == "roll_back" and isinstance(worse["high"], float) and worse["high"] < 0
    assert few["action"] == "not_enough_labels" and few["low"] is None
    assert advice("11")["action"] == "not_enough_labels"  # a version with no labelled predictions
    assert (
        client.get("/canary", params={"canary": "8", "champion": "7", "min_labels": 500}).json()["action"]
        == "not_enough_labels"
    )
    nothing_seen = client.get("/canary", params={"canary": "8"})  # no champion named, none followed yet
    assert nothing_seen.status_code == 404 and nothing_seen.json()["code"] == "not_found"
    assert client.get("/canary", params={"canary": "8!"}).status_code == 422
    app.state.drift.watch.versions[model] = "7"  # what the champion's monitors follow
    app.state.drift.watch.canaries[model] = "8"  # the last version seen answering as a canary
    seen = client.get("/canary")
    assert seen.status_code == 200 and seen.json()["action"] == "promote"
    assert seen.json()["canary"]["version"] == "8" and seen.json()["champion"]["version"] == "7"
    other = client.get(
        "/canary", params={"canary": "8", "champion": "7"}, headers={"X-API-Key": keys["client"]}
    )
    assert other.status_code == 403
