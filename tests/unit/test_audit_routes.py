"""The auditors' API through FastAPI's TestClient: roles, filters, pages, CSV, lineage, verify, and bad
queries (bad dates, injection strings, huge pages) answered with a clear 4xx, never a 500."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.registry import encode_event
from contracts.samples import sample_events
from servicekit.auth import Role, write_dev_keys
from services.audit import verification
from services.audit.adapters.kafka_log import KafkaLog
from services.audit.app import create_app
from services.audit.cli import main
from services.audit.domain.anchors import PublishedCheckpoint
from services.audit.domain.entry import Captured, to_entry
from services.audit.handlers import AuditService, now_us
from services.audit.settings import AuditSettings
from services.audit.signing import CheckpointSigner, load_private_key
from tests.unit.test_audit_support import MemoryLog, captured, lineage_flow, new_store

INJECTIONS = ["' OR 1=1 --", "x'; DROP TABLE audit_events; --", '" OR ""="', "%", "*", "1) OR (1=1"]
FILTERS = [
    "event_type",
    "topic",
    "entity_id",
    "model_name",
    "model_version",
    "correlation_id",
    "prediction_id",
]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    return {v["role"]: v["key"] for v in plain.values()}


SAMPLES = len(sample_events())  # one event of every type
ROWS = SAMPLES + 5  # and the lineage flow's five


@pytest.fixture
def client(tmp_path: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """ROWS rows, their records in an in-memory Kafka log (standing in for KafkaLog), one signed checkpoint
    under the key the service would create in <state_dir>/secrets."""
    store = new_store(tmp_path)
    flow, log = lineage_flow(), MemoryLog()
    audit = AuditService(store)
    audit.capture(log.add(captured(sample_events(), topic="mixed") + captured(flow, topic="flow")))
    settings = AuditSettings(
        api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path, max_page_size=50
    )
    signer = CheckpointSigner(load_private_key(settings.resolved_signing_key_file, create=True))
    checkpoint = audit.make_checkpoint(force=True)
    assert checkpoint is not None
    payload = signer.sign(checkpoint.payload, settings.chain_name, store.stored_hash(1) or "")
    log.published.append(PublishedCheckpoint(payload, "audit.checkpoints:0:0"))
    monkeypatch.setattr(verification, "KafkaLog", lambda *_: log)
    client = TestClient(create_app(settings, store=store))  # no lifespan: no broker needed
    client.headers["X-API-Key"] = keys["auditor"]
    client.flow = flow  # type: ignore[attr-defined]
    client.log = log  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize("path", ["/events", "/lineage/pred-42", "/verify", "/summary"])
def test_only_auditors_and_admins_read(client: TestClient, keys: dict[str, str], path: str) -> None:
    assert client.get(path, headers={"X-API-Key": ""}).status_code == 401
    assert client.get(path, headers={"X-API-Key": "mlops_wrong"}).status_code == 401
    for role in ("producer", "client", "ops"):
        response = client.get(path, headers={"X-API-Key": keys[role]})
        assert response.status_code == 403 and "auditor" in response.json()["detail"]
    for role in ("auditor", "admin"):
        assert client.get(path, headers={"X-API-Key": keys[role]}).status_code == 200


def test_filters_select_exactly_the_matching_events(client: TestClient) -> None:
    def items(**params: object) -> list[dict[str, object]]:
        response = client.get("/events", params=params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    assert [e["event_type"] for e in items(event_type="ModelPromoted")] == ["ModelPromoted"] * 2
    assert {e["entity_id"] for e in items(entity_id="customer-9")} == {"customer-9"}
    assert {e["topic"] for e in items(model_version="7")} == {"flow"}
    flow = client.flow  # type: ignore[attr-defined]
    correlated = items(correlation_id=flow[0].correlation_id)
    assert [e["event_id"] for e in correlated] == [str(e.event_id) for e in flow[:4]]
    assert correlated[3]["event"]["payload"]["evidence"]["checks"][0]["name"] == "auc_not_worse"
    assert (
        len(items(since="2025-01-02T04:04:05Z", until="2025-01-02T04:04:06+00:00")) == SAMPLES
    )  # samples' time
    assert items(since="2030-01-01T00:00:00Z") == []


def test_pages_follow_the_sequence_and_csv_has_the_same_rows(client: TestClient) -> None:
    first = client.get("/events", params={"limit": 7}).json()
    second = client.get("/events", params={"limit": 50, "after": first["next_after"]}).json()
    seqs = [e["seq"] for e in first["items"] + second["items"]]
    assert seqs == list(range(1, ROWS + 1)) and second["next_after"] is None
    response = client.get("/events", params={"format": "csv", "event_type": "PredictionMade"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["prediction_id"] for r in rows] == ["pred-1", "pred-42"]
    assert json.loads(rows[1]["event"])["payload"]["score"] == 0.81


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_in_filters_match_nothing(client: TestClient, name: str, value: str) -> None:
    response = client.get("/events", params={name: value})
    assert response.status_code == 200 and response.json()["items"] == []
    assert client.get("/summary").json()["chain_length"] == ROWS  # nothing was dropped either


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"since": "yesterday"}, "datetime"),
        ({"until": "2025-13-45T00:00:00Z"}, "datetime"),
        ({"since": "2025-01-02T03:04:05"}, "timezone"),
        ({"since": "2025-01-03T00:00:00Z", "until": "2025-01-02T00:00:00Z"}, "after"),
        ({"limit": 51}, "less than or equal to 50"),
        ({"limit": 10**12}, "less than or equal"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"limit": "ten"}, "integer"),
        ({"after": -1}, "greater than or equal to 0"),
        ({"after": "1 OR 1=1"}, "integer"),
        ({"format": "xml"}, "json"),
        ({"entity_id": "a\x00b"}, "pattern"),
        ({"entity_id": "x" * 257}, "at most 256"),
        ({"event_type": ""}, "at least 1"),
    ],
)
def test_bad_queries_get_a_clear_422(client: TestClient, params: dict[str, object], needle: str) -> None:
    response = client.get("/events", params=params)
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_lineage_of_one_prediction_in_one_call(client: TestClient) -> None:
    drift, request, _trained, promoted, prediction = client.flow  # type: ignore[attr-defined]
    body = client.get("/lineage/pred-42").json()
    assert body["prediction"]["event_id"] == str(prediction.event_id)
    assert body["model"] == {"name": "fraud", "version": "7"}
    assert body["promotion"]["event_id"] == str(promoted.event_id)
    assert body["gate_evidence"]["champion_version"] == "6"
    assert body["training_run"]["run_id"] == "run-7"
    assert body["dataset"] == {"version": "2025-01-02", "sha256": "cd" * 32}
    assert body["training_window"]["end"].startswith("2025-01-02T03:04:05")
    assert body["training_request"]["event_id"] == str(request.event_id)
    assert body["drift"]["event_id"] == str(drift.event_id) and body["missing"] == []


@pytest.mark.parametrize("path", ["/lineage/nope", "/lineage/'%20OR%201=1%20--"])
def test_lineage_of_an_unknown_prediction_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    body = response.json()
    assert response.status_code == 404 and body["code"] == "not_found"
    assert body["detail"].startswith("no prediction ") and "is recorded in the audit trail" in body["detail"]


def test_verify_and_summary(client: TestClient) -> None:
    report = client.get("/verify").json()
    assert report["intact"] and report["checked"] == ROWS and report["broken_at"] is None
    assert report["anchors_checked"] == 1 and report["kafka_rows_checked"] == ROWS
    summary = client.get("/summary").json()
    assert summary["chain_length"] == ROWS and summary["head_hash"] == report["head_hash"]
    assert summary["events_by_type"]["PredictionMade"] == 2


def test_verify_catches_a_forged_row_with_a_correct_hash_as_the_cli_does(
    client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.audit.store  # type: ignore[attr-defined]
    forged = lineage_flow(version="666")[3]
    store.append([to_entry(Captured("flow", 0, 5, 0, forged.key(), encode_event(forged)))], now_us())
    assert client.get("/events", params={"model_version": "666"}).json()["items"]  # the forgery is served
    report = client.get("/verify").json()
    assert report["intact"] is False and "flow:0@5, which Kafka never held" in report["reason"]
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(tmp_path / "secrets" / "audit-signing.key"))
    assert main(["verify", "--database-url", store.url]) == 1
    assert json.loads(capsys.readouterr().out) == report  # one verification, two front ends


def test_verify_is_503_when_kafka_does_not_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verification, "KafkaLog", lambda *_: KafkaLog("127.0.0.1:1", timeout_s=2))
    response = client.get("/verify")
    assert response.status_code == 503 and "did not answer" in response.json()["detail"]
