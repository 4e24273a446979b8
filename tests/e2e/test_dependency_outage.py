"""A drill: the audit service, its own process on PostgreSQL, loses its database mid-stream.

PostgreSQL is stopped hard (`pg_ctl stop -m immediate`, what a crash looks like to its clients) while
events stream in, and started again seconds later. The service must wait (its readiness names the
database as unavailable, its log says so), dead-letter nothing, and, once the database is back,
record every event exactly once in a chain that still verifies."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from servicekit.auth import Role, write_dev_keys
from tests.e2e.test_audit_service import free_port, produce
from tests.support import create_topic
from tests.support_postgres import PostgresCluster

EVENTS_BEFORE, EVENTS_DURING = 2_000, 2_000


@pytest.fixture
def drill(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="mlops-pg-drill-"))
    database = PostgresCluster(folder, durable=True)  # it is crashed below: commits must survive
    database.start()
    run = uuid.uuid4().hex[:10]
    topic = f"test.outage.{run}"
    asyncio.run(create_topic(kafka_bootstrap, topic, partitions=3))
    asyncio.run(create_topic(kafka_bootstrap, f"{topic}.cp"))
    _, hashed = write_dev_keys(tmp_path / "secrets", [("auditor", Role.AUDITOR), ("ops", Role.OPS)])
    keys = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    port = free_port()
    url = database.create_database("audit")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_API_KEYS_FILE": str(hashed),
        "AUDIT_DATABASE_URL": url,
        "AUDIT_HTTP_PORT": str(port),
        "AUDIT_TOPICS": json.dumps([topic]),
        "AUDIT_GROUP_ID": f"audit-{run}",
        "AUDIT_CHECKPOINT_TOPIC": f"{topic}.cp",
        "AUDIT_CHECKPOINT_INTERVAL_S": "0.5",
        "AUDIT_VERIFY_WORKERS": "1",
    }
    log = tmp_path / "audit.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "services.audit"], env=env, stdout=out, stderr=out)
    try:
        yield {
            "database": database, "url": url, "topic": topic, "run": run, "log": log,
            "api": f"http://127.0.0.1:{port}", "auditor": keys["auditor"]["key"], "ops": keys["ops"]["key"],
        }  # fmt: skip
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)


def recorded(url: str, topic: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM audit_events WHERE topic = :t"), {"t": topic}
                ).scalar_one()
            )
    except Exception:  # the table is not there yet, or the database is down
        return -1
    finally:
        engine.dispose()


def ready(api: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{api}/ready", timeout=5)
    except httpx.HTTPError:
        return None


def wait_for(predicate: Any, what: str, timeout_s: float = 240) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def test_the_audit_waits_for_its_database_and_loses_nothing(
    kafka_bootstrap: str, drill: dict[str, Any]
) -> None:
    api, topic, url = drill["api"], drill["topic"], drill["url"]
    wait_for(lambda: (r := ready(api)) is not None and r.status_code == 200, "the audit service to be ready")
    asyncio.run(produce(kafka_bootstrap, topic, drill["run"], EVENTS_BEFORE))
    wait_for(lambda: recorded(url, topic) > 200, "the first events in PostgreSQL")

    drill["database"].stop()  # mid-stream: -m immediate, no goodbye to the clients
    down_at = time.monotonic()
    asyncio.run(produce(kafka_bootstrap, topic, f"{drill['run']}-during", EVENTS_DURING))
    waiting = wait_for(
        lambda: (r := ready(api)) is not None and r.status_code == 503 and r.json().get("unavailable") and r,
        "readiness to name the unavailable database",
        timeout_s=120,
    )
    assert "database" in waiting.json()["unavailable"], waiting.json()
    time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))  # an outage of several seconds
    drill["database"].start_server()

    total = EVENTS_BEFORE + EVENTS_DURING
    try:
        wait_for(lambda: recorded(url, topic) == total, f"all {total} events after the database came back")
    except AssertionError:
        raise AssertionError(_diagnosis(drill, total)) from None
    wait_for(
        lambda: (r := ready(api)) is not None and r.status_code == 200, "readiness once the database is back"
    )
    time.sleep(2)  # a late, lost or redelivered batch would change the count now
    assert recorded(url, topic) == total  # (a double cannot: the coordinates are a unique key)

    metrics = httpx.get(f"{api}/metrics", headers={"X-API-Key": drill["ops"]}, timeout=10).text
    letters = [
        line for line in metrics.splitlines() if line.startswith("mlops_dead_letters_total") and topic in line
    ]
    assert all(line.rstrip().endswith(" 0.0") for line in letters), letters
    verdict = httpx.get(f"{api}/verify", headers={"X-API-Key": drill["auditor"]}, timeout=120).json()
    assert verdict["intact"], verdict

    log = drill["log"].read_text(errors="replace")
    assert "database is unavailable" in log and "database is back after" in log


def _diagnosis(drill: dict[str, Any], total: int) -> str:
    """What the service says it consumed, against what the database holds."""
    metrics = httpx.get(f"{drill['api']}/metrics", headers={"X-API-Key": drill["ops"]}, timeout=10).text
    kept = ("mlops_events", "mlops_consumer", "mlops_dead", "audit_")
    lines = [line for line in metrics.splitlines() if line.startswith(kept)]
    answer = ready(drill["api"])
    return (
        f"{recorded(drill['url'], drill['topic'])} of {total} recorded; ready: {answer and answer.text}\n"
        + "\n".join(lines)
    )
