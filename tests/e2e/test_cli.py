"""The `mlops` CLI as a user runs it: separate processes, a state folder of its own, real Kafka."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.settings import REPO_ROOT
from servicekit.priority import autogroup_nice
from tests.support import TEST_KAFKA_PORT, isolated_env

PORT = TEST_KAFKA_PORT + 200


def mlops(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, jars_dir: Path) -> dict[str, str]:
    env = isolated_env()
    env.update(
        {
            "MLOPS_STATE_DIR": str(tmp_path / "state"),
            "MLOPS_JARS_DIR": str(jars_dir),
            "MLOPS_KAFKA_PORT": str(PORT),
            "MLOPS_KAFKA_CONTROLLER_PORT": str(PORT + 1),
        }
    )
    yield env
    mlops("down", env=env)


def kcat(bootstrap: str, env: dict[str, str], user: str, *args: str, stdin: bytes | None = None) -> bytes:
    """The README's kcat line: `-F` the principal's private config file that `mlops up` wrote."""
    config = Path(env["MLOPS_STATE_DIR"]) / "secrets" / f"kcat-{user}.conf"
    return subprocess.run(
        ["kcat", "-b", bootstrap, "-F", str(config), *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def status(env: dict[str, str]) -> tuple[int, dict[str, dict[str, object]]]:
    result = mlops("status", "--json", env=env)
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["components"]}


def test_up_status_down_and_data_survives_a_restart(cli_env: dict[str, str]) -> None:
    bootstrap = f"127.0.0.1:{PORT}"
    first = mlops("up", "--no-services", env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "topics: " in first.stderr and "created" in first.stderr

    again = mlops("up", "--no-services", env=cli_env)  # starting twice is harmless
    assert again.returncode == 0 and "already running" in again.stderr

    code, components = status(cli_env)
    kafka = components["kafka"]
    assert code == 0 and kafka["health"] == "ready" and kafka["url"] == f"kafka://{bootstrap}"
    assert isinstance(kafka["pid"], int) and kafka["rss_mib"] > 50  # a JVM, really running

    marker = uuid.uuid4().hex.encode()
    kcat(
        bootstrap,
        cli_env,
        "producer",
        "-P",
        "-t",
        "records.raw",
        "-k",
        "app-1",
        stdin=b'{"marker": "' + marker + b'"}\n',
    )

    down = mlops("down", env=cli_env)
    assert down.returncode == 0 and "kafka: stopped" in down.stderr
    assert not Path(f"/proc/{kafka['pid']}").exists()
    code, components = status(cli_env)
    assert code == 1 and components["kafka"]["health"] == "down"

    assert mlops("up", "--no-services", env=cli_env).returncode == 0
    records = kcat(bootstrap, cli_env, "admin", "-C", "-t", "records.raw", "-o", "beginning", "-e", "-q")
    assert marker in records  # the record written before the restart is still there


def test_an_external_cluster_is_used_and_left_alone(cli_env: dict[str, str], kafka_bootstrap: str) -> None:
    env = {**cli_env, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    up = mlops("up", "--no-services", env=env)
    assert up.returncode == 0, up.stderr
    assert not (Path(env["MLOPS_STATE_DIR"]) / "kafka" / "kafka.pid").exists()  # no local broker started
    code, components = status(env)
    assert code == 0 and components["kafka"]["url"] == f"kafka://{kafka_bootstrap}"
    assert components["kafka"]["pid"] is None
    down = mlops("down", env=env)
    assert "left alone" in down.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--services", "no-such-service"], "unknown service"),
        (["status", "--jsn"], "unrecognized arguments"),
        (["teleport"], "invalid choice"),
        (["demo", "--stpo"], "unrecognized arguments"),
        # The tools `mlops` runs as programs of their own name the command typed (issue 17).
        (["produce", "--rows", "-1"], "mlops produce: error: argument --rows: must be positive"),
        (["produce", "--drift-feature", "nonexistent"], "mlops produce: error: --drift-feature"),
        (["train", "request", "--reason", "whim"], "mlops train request: error: argument --reason"),
        (["audit", "lineage"], "mlops audit lineage: error"),
    ],
)
def test_bad_cli_input_gets_a_clear_error(cli_env: dict[str, str], args: list[str], message: str) -> None:
    result = mlops(*args, env=cli_env)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_taken_port_is_reported_not_fought_over(cli_env: dict[str, str], kafka_bootstrap: str) -> None:
    port = kafka_bootstrap.rsplit(":", 1)[1]
    env = {**cli_env, "MLOPS_KAFKA_PORT": port, "MLOPS_KAFKA_CONTROLLER_PORT": str(PORT + 5)}
    result = mlops("up", "--no-services", env=env)
    assert result.returncode == 2 and f"port {port} is taken" in result.stderr


def test_invalid_settings_are_refused_by_name(cli_env: dict[str, str]) -> None:
    result = mlops("up", "--no-services", env={**cli_env, "MLOPS_KAFKA_PORT": "ninety"})
    # One line naming the setting as it was typed, exit 2, no traceback.
    assert result.returncode == 2 and "error: MLOPS_KAFKA_PORT:" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_starts_services_as_processes_and_down_stops_exactly_them(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "MLOPS_FIRST_SERVICE_PORT": str(PORT - 1100)}  # clear of a dev stack's 8101...
    up = mlops("up", "--services", "audit", env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "kafka + 1 service(s)" in up.stderr

    code, components = status(env)
    audit = components["audit"]
    assert code == 0 and audit["health"] == "ready" and audit["kind"] == "service"
    assert audit["url"] == f"http://127.0.0.1:{PORT - 1100 + 6}"  # audit is 7th in the canonical order
    assert Path(str(audit["log"])).exists() and audit["rss_mib"] > 20
    keys = Path(env["MLOPS_STATE_DIR"]) / "secrets" / "api-keys.json"
    assert keys.stat().st_mode & 0o077 == 0  # development keys are private to their owner
    # A service that trails the stream yields the cores to serving, ingest and features: every
    # thread, and its session's autogroup (which is what orders it against other services when the
    # kernel groups by session).
    threads = list(Path(f"/proc/{audit['pid']}/task").iterdir())
    assert len(threads) > 1 and {os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in threads} == {15}
    assert autogroup_nice(int(str(audit["pid"]))) in (15, None)  # None: a kernel without autogroups

    again = mlops("up", "--services", "audit", env=env)  # harmless: the running service is kept
    assert again.returncode == 0
    assert status(env)[1]["audit"]["pid"] == audit["pid"]

    down = mlops("down", env=env)
    assert "audit: stopped" in down.stderr and "kafka: stopped" in down.stderr
    assert not Path(f"/proc/{audit['pid']}").exists()


def test_a_service_port_taken_by_a_stranger_is_refused(cli_env: dict[str, str]) -> None:
    import socket

    first = PORT - 1200
    stranger = socket.socket()
    stranger.bind(("127.0.0.1", first + 6))  # where audit would listen
    stranger.listen()
    try:
        env = {**cli_env, "MLOPS_FIRST_SERVICE_PORT": str(first)}
        result = mlops("up", "--services", "ingest,audit", env=env)
    finally:
        stranger.close()
    assert result.returncode != 0 and f"port {first + 6} of audit is taken" in result.stderr
    # ingest, started before the refusal, is not orphaned: `down` knows it and stops it.
    rows = {row["name"]: row for row in json.loads(mlops("status", "--json", env=env).stdout)["components"]}
    assert "audit" not in rows and rows["ingest"]["pid"], rows
    down = mlops("down", env=env)
    assert "ingest: stopped" in down.stderr, down.stderr
    assert not Path(f"/proc/{rows['ingest']['pid']}").exists()
