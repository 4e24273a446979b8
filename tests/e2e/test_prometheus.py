"""`mlops up --with-prometheus`: the real Prometheus (Debian package) scrapes a real service's /metrics
with the ops key from its run-time credentials file, and `mlops down` stops it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import stack_env
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 300
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 1300
PROMETHEUS_PORT = TEST_KAFKA_PORT + 310
PROMETHEUS = f"http://127.0.0.1:{PROMETHEUS_PORT}"


@pytest.fixture
def env(tmp_path: Path, jars_dir: Path) -> Iterator[dict[str, str]]:
    env = stack_env(tmp_path / "state", jars_dir, PORT, FIRST_SERVICE_PORT)
    env.update({"MLOPS_PROMETHEUS_PORT": str(PROMETHEUS_PORT), "MLOPS_PROMETHEUS_SCRAPE_INTERVAL_S": "1"})
    yield env
    mlops("down", env=env)


def query(path: str, **params: str) -> Any:
    response = httpx.get(f"{PROMETHEUS}{path}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


def eventually(read: Any, accept: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if accept(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_prometheus_scrapes_a_service_with_the_ops_key_and_stops_with_the_stack(env: dict[str, str]) -> None:
    up = mlops("up", "--services", "audit", "--with-prometheus", env=env)
    assert up.returncode == 0, up.stderr
    state = Path(env["MLOPS_STATE_DIR"])
    key_file = state / "prometheus" / "ops-api-key"
    assert key_file.stat().st_mode & 0o077 == 0  # the ops key is private to its owner
    assert key_file.read_text() not in (state / "prometheus" / "prometheus.yml").read_text()

    targets = eventually(
        lambda: query("/api/v1/targets")["activeTargets"],
        lambda ts: any(t["health"] == "up" for t in ts),
    )
    assert [(t["labels"]["component"], t["health"]) for t in targets] == [("audit", "up")], targets
    assert targets[0]["scrapeUrl"] == f"http://127.0.0.1:{FIRST_SERVICE_PORT + 6}/metrics"

    # The metrics the dashboard reads are there: the audit chain and the capture consumers' lag.
    assert query("/api/v1/query", query="mlops_audit_chain_length")["result"]
    lag = eventually(
        lambda: query("/api/v1/query", query='mlops_consumer_lag{service="audit"}')["result"], bool, 30
    )
    assert lag and {r["metric"]["topic"] for r in lag} >= {"records.clean"}

    status = json.loads(mlops("status", "--json", env=env).stdout)
    prometheus = next(c for c in status["components"] if c["name"] == "prometheus")
    assert prometheus["health"] == "ready" and prometheus["url"] == PROMETHEUS

    down = mlops("down", env=env)
    assert "prometheus: stopped" in down.stderr
    assert not Path(f"/proc/{prometheus['pid']}").exists()


def test_a_missing_prometheus_is_named_before_anything_starts(env: dict[str, str]) -> None:
    result = mlops("up", "--with-prometheus", env={**env, "MLOPS_PROMETHEUS_BINARY": "no-such-prometheus"})
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert result.returncode == 2 and "install the Debian package: apt-get install prometheus" in message
    assert not (Path(env["MLOPS_STATE_DIR"]) / "run" / "components.json").exists()
