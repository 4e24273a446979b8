"""Erasure at the edges: `POST /erasures` (ops and admin only; bad bodies are 422s that erase nothing)
and `python -m services.audit.cli erase` (the id as an argument or on stdin)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from servicekit.auth import Role, write_dev_keys
from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import SqlAuditStore
from services.audit.app import create_app
from services.audit.cli import main as cli_main
from services.audit.handlers import AuditService
from services.audit.settings import AuditSettings
from services.audit.verification import verify_store
from tests.unit.test_audit_erasure import OTHER, SUBJECT, _key_rows, clear_values, subject_events
from tests.unit.test_audit_support import KEYS, captured, open_store


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], SqlAuditStore]]:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditService(store).capture(captured(subject_events(), topic="mixed"))
    settings = AuditSettings(api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path)
    yield TestClient(create_app(settings, store=store)), keys, store  # no lifespan: no broker needed
    store.dispose()


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("auditor", 403), ("client", 403), ("producer", 403)]
)
def test_only_ops_and_admin_may_erase(api: tuple[TestClient, dict[str, str], SqlAuditStore], role: str | None,
                                      status: int) -> None:  # fmt: skip
    client, keys, store = api
    headers = {"X-API-Key": keys[role]} if role else {}
    assert client.post("/erasures", json={"subject_id": SUBJECT}, headers=headers).status_code == status
    assert store.head()[0].length == 5 and len(_key_rows(store)) == 2


@pytest.mark.parametrize("role", ["ops", "admin"])
def test_the_erasure_route_shreds_the_subject_and_answers_with_its_reference_only(
    api: tuple[TestClient, dict[str, str], SqlAuditStore], role: str
) -> None:
    client, keys, store = api
    answer = client.post("/erasures", json={"subject_id": SUBJECT}, headers={"X-API-Key": keys[role]})
    assert answer.status_code == 200, answer.text
    assert SUBJECT not in answer.text and answer.json()["subject_ref"] == KEYS.ref(SUBJECT)
    assert answer.json()["keys_deleted"] == 1 and answer.json()["seq"] == 6
    auditor = {"X-API-Key": keys["auditor"]}
    found = client.get("/events", params={"entity_id": SUBJECT}, headers=auditor).json()["items"]
    assert [e["kind"] for e in found] == ["event"] * 4 + ["erasure"]
    assert all(value not in json.dumps(found) for value in clear_values())
    assert found[-1]["note"] == f"k-{role}"  # who erased is chained
    assert verify_store(store).ok


@pytest.mark.parametrize("body", [{}, {"subject_id": ""}, {"subject_id": "a\x00b"}, {"subject_id": "x" * 257},
                                  {"subject_id": 5}, {"subject": SUBJECT}])  # fmt: skip
def test_a_bad_erasure_request_is_a_422_and_erases_nothing(
    api: tuple[TestClient, dict[str, str], SqlAuditStore], body: dict[str, Any]
) -> None:
    client, keys, store = api
    assert client.post("/erasures", json=body, headers={"X-API-Key": keys["ops"]}).status_code == 422
    assert store.head()[0].length == 5 and len(_key_rows(store)) == 2


def test_the_cli_erases_by_argument_or_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "subject.secret"
    secret.write_text(bytes(range(32)).hex())  # the secret behind KEYS
    monkeypatch.setenv("AUDIT_SUBJECT_SECRET_FILE", str(secret))
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditService(store).capture(captured(subject_events(), topic="mixed"))
    assert cli_main(["erase", SUBJECT, "--database-url", store.url, "--by", "dpo"]) == 0
    assert json.loads(capsys.readouterr().out)["keys_deleted"] == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(OTHER + "\n"))
    assert cli_main(["erase", "-", "--database-url", store.url]) == 0
    printed = capsys.readouterr().out
    assert OTHER not in printed and json.loads(printed)["subject_ref"] == KEYS.ref(OTHER)
    assert _key_rows(store) == [] and verify_store(store).ok
    notes = [r["note"] for r in store.events(EventQuery(event_type="SubjectErased"))]
    assert notes[0] == "dpo" and notes[1].startswith("cli:")
    store.dispose()
