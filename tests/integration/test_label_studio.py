"""The real Label Studio server (its own venv, scripts/install-label-studio.sh), started through
infra/label_studio.py: the generated admin token drives its API (a project with the platform's
labelling config, a task, a scripted annotator's annotation read back), a webhook reaches a local
listener with the headers we set, a wrong token is refused, and `mlops status` / `mlops down` cover it.

Its state lives under the test state folder and is kept between runs (like the test broker's), so
only the first run pays for Label Studio's database migrations."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from rich.console import Console

from infra.label_studio import LocalLabelStudio, auth_header, start_label_studio
from infra.processes import pid_alive
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import Supervisor
from services.annotation.adapters.label_studio import LABEL_CONFIG  # the config the service uses
from tests.conftest import TEST_STATE_DIR
from tests.e2e.stack import wait_for
from tests.support import TEST_KAFKA_PORT, isolated_env

PORT = TEST_KAFKA_PORT + 700
HOOK_PORT = TEST_KAFKA_PORT + 710
STATE = TEST_STATE_DIR / "label-studio-stack"


def mlops(*args: str) -> subprocess.CompletedProcess[str]:
    env = isolated_env()
    # No broker here: the Kafka row of `status` points at a closed port of this test's own range.
    env.update({"MLOPS_STATE_DIR": str(STATE), "MLOPS_KAFKA_PORT": str(PORT + 2)})
    env.update({"MLOPS_LABEL_STUDIO_PORT": str(PORT)})
    command = [sys.executable, "-m", "infra.cli", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def settings() -> Iterator[InfraSettings]:
    settings = InfraSettings(state_dir=STATE, label_studio_port=PORT, kafka_port=PORT + 2)
    server = LocalLabelStudio(settings)
    if not (server.venv / "bin" / "label-studio").exists():
        pytest.fail(f"Label Studio is not installed in {server.venv}: run scripts/install-label-studio.sh")
    supervisor = Supervisor(settings)
    components = supervisor.load()
    components["label-studio"] = start_label_studio(settings, components, Console(stderr=True))
    supervisor.save(components)
    yield settings
    mlops("down")


@pytest.fixture
def hooks() -> Iterator[list[dict[str, Any]]]:
    """What a local HTTP listener received: each call's headers and JSON body."""
    received: list[dict[str, Any]] = []

    class Listener(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", HOOK_PORT), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received
    server.shutdown()
    server.server_close()


def api(settings: InfraSettings) -> httpx.Client:
    headers = auth_header(settings.secrets_dir)
    return httpx.Client(base_url=LocalLabelStudio(settings).url, headers=headers, timeout=30)


def test_a_scripted_annotation_round_trips_and_its_webhook_arrives_with_our_header(
    settings: InfraSettings, hooks: list[dict[str, Any]]
) -> None:
    credentials = settings.secrets_dir / "label-studio.json"
    assert credentials.stat().st_mode & 0o077 == 0  # the admin password and token are the owner's only
    with api(settings) as client:
        project = client.post("/api/projects/", json={"title": "review", "label_config": LABEL_CONFIG})
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]
        hook = client.post(
            "/api/webhooks/",
            json={
                "project": project_id,
                "url": f"http://127.0.0.1:{HOOK_PORT}/labels",
                "send_payload": True,
                "send_for_all_actions": False,
                "actions": ["ANNOTATION_CREATED"],
                "headers": {"X-Webhook-Token": "shared-secret"},
            },
        )
        assert hook.status_code == 201, hook.text
        data = {"prediction_id": "p-1", "decision": "approve", "score": 0.52, "explanation": "income is high"}
        imported = client.post(f"/api/projects/{project_id}/import", json=[{"data": data}])
        assert imported.status_code == 201 and imported.json()["task_count"] == 1, imported.text
        tasks = client.get("/api/tasks/", params={"project": project_id}).json()["tasks"]
        assert [t["data"] for t in tasks] == [data]
        result = [
            {
                "from_name": "outcome",
                "to_name": "explanation",
                "type": "choices",
                "value": {"choices": ["bad"]},
            },
            {
                "from_name": "reasoning",
                "to_name": "explanation",
                "type": "choices",
                "value": {"choices": ["reasoning wrong"]},
            },
            {
                "from_name": "comment",
                "to_name": "explanation",
                "type": "textarea",
                "value": {"text": ["debt"]},
            },
        ]
        created = client.post(f"/api/tasks/{tasks[0]['id']}/annotations/", json={"result": result})
        assert created.status_code == 201, created.text
        back = client.get(f"/api/tasks/{tasks[0]['id']}/annotations/").json()
    assert [a["result"] for a in back] == [result]
    wait_for(lambda: hooks, 10, "the ANNOTATION_CREATED webhook")
    assert [h["body"]["action"] for h in hooks] == ["ANNOTATION_CREATED"]
    call = hooks[0]
    assert call["headers"]["X-Webhook-Token"] == "shared-secret"  # the only authentication there is
    assert call["body"]["annotation"]["id"] == created.json()["id"]
    assert (
        call["body"]["annotation"]["task"] == tasks[0]["id"] and call["body"]["project"]["id"] == project_id
    )
    assert call["body"]["annotation"]["result"] == result
    assert call["body"]["task"]["data"] == data  # the task's fields come along: no read-back needed


def test_a_wrong_token_is_refused(settings: InfraSettings) -> None:
    url = LocalLabelStudio(settings).url
    wrong = httpx.get(f"{url}/api/projects/", headers={"Authorization": "Token not-our-token"}, timeout=30)
    missing = httpx.get(f"{url}/api/projects/", timeout=30)
    assert wrong.status_code == 401 and missing.status_code == 401


def test_a_second_start_keeps_the_running_server(settings: InfraSettings) -> None:
    components = Supervisor(settings).load()
    again = start_label_studio(settings, dict(components), Console(stderr=True))
    assert again.pid == components["label-studio"].pid and pid_alive(again.pid or 0)


def test_mlops_status_reports_it_and_down_stops_it(settings: InfraSettings) -> None:
    status = mlops("status", "--json")
    row = next(c for c in json.loads(status.stdout)["components"] if c["name"] == "label-studio")
    assert row["url"] == f"http://127.0.0.1:{PORT}" and row["health"] == "ready", row
    assert row["rss_mib"] > 50
    down = mlops("down")
    assert "label-studio: stopped" in down.stderr
    assert not pid_alive(row["pid"])
