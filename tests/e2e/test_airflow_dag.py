"""The nightly Airflow DAG (infra/airflow/dags/mlops_nightly.py) as Airflow runs it: parsed by Airflow
in its own venv (scripts/install-airflow.sh) without import errors, then `airflow dags test` against a
stack started by `mlops up` with a champion and a day of applications: the run succeeds when the gate
promotes the scheduled retrain, and fails with the gate's reason when a policy makes it reject.

Airflow missing is a failure that says how to install it, never a skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER
from services.training.settings import DEFAULT_POLICY
from tests.e2e.stack import api, logs, stack_env, wait_for
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 900
FIRST_SERVICE_PORT = PORT + 10  # Kafka takes PORT and PORT + 1; the services PORT + 10 onwards
SERVICES = "ingest,features,training,serving,drift"
ROWS = 1500  # enough labels for the gate's intervals (tests/e2e/test_core_loop.py)
# A manual run (`airflow dags test`) of logical date D covers [D - 1 day, D): this one scores 2026-01-01,
# the day of the demo producer's applications (from 2026-01-01 00:00Z, one a second).
DAY = "2026-01-02"
THE_DAY = {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"}
WINDOW = repr(THE_DAY)  # as the task logs print it
AIRFLOW = REPO_ROOT / "scripts" / "airflow.sh"
AIRFLOW_VENV = REPO_ROOT / ".local" / "venvs" / "airflow"
QUIET = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}  # Airflow logs to stdout: keep its JSON alone there
TASKS = (
    "batch_score_the_day",
    "make_drift_report",
    "request_scheduled_retrain",
    "wait_for_retrain_outcome",
    "fail_if_the_gate_rejected",
)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An AIRFLOW_HOME of the tests' own (SQLite), migrated once; the developer's is left alone."""
    if not (AIRFLOW_VENV / "bin" / "airflow").exists():
        pytest.fail(f"no Airflow at {AIRFLOW_VENV}: run scripts/install-airflow.sh (make test does)")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home)}
    # reserialize: `dags list-runs` knows only the DAGs in its table (`dags test` writes none there)
    for step in (("db", "migrate"), ("dags", "reserialize")):
        done = airflow(*step, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    return env


def airflow(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Iterator[dict[str, str]]:
    """A stack with a champion trained on a day of applications, its policy in a file the test edits
    (the training service reads it at each run)."""
    state = tmp_path_factory.mktemp("nightly")
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    env["TRAINING_POLICY_FILE"] = str(shutil.copy(DEFAULT_POLICY, state / "policy.yaml"))
    up = mlops("up", "--services", SERVICES, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        produced = mlops(
            "produce", "--rows", str(ROWS), "--rate", "0", "--label-delay-s", "0.5", "--follow",
            env=env, timeout=300,
        )  # fmt: skip
        assert produced.returncode == 0, produced.stderr
        with api(env, "training", "ops") as ops:
            request = ops.post("/train", json={"reason": "manual"}).json()["event_id"]
            champion = wait_for(lambda: _outcome(ops.get(f"/requests/{request}")), 300, "the first model")
        assert champion["status"] == "promoted", f"{champion}\n{logs(state)}"
        with api(env, "serving", "ops") as ops:  # serving swaps on model.promoted: wait for it
            serving_has = lambda: (ops.get("/model").json().get("champion") or {}).get("model_version")  # noqa: E731
            wait_for(lambda: serving_has() == champion["model_version"], 120, "serving to load the champion")
        yield env
    finally:
        mlops("down", env=env)


def _outcome(response: Any) -> dict[str, Any] | None:
    return response.json() if response.status_code == 200 else None


def dag_env(airflow_env: dict[str, str], stack: dict[str, str]) -> dict[str, str]:
    """What the DAG reads: the stack's URLs and its ops key file, and short polls."""
    urls = {
        f"MLOPS_{name.upper()}_URL": f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index(name)}"
        for name in ("serving", "drift", "training")
    }
    key_file = str(Path(stack["MLOPS_STATE_DIR"]) / "secrets" / "api-keys.json")
    waits = {"MLOPS_NIGHTLY_WAIT_S": "600", "MLOPS_NIGHTLY_POLL_S": "1"}
    return airflow_env | urls | waits | {"MLOPS_OPS_KEY_FILE": key_file}


def run_nightly(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """`airflow dags test` of the day, and the state of each of its tasks."""
    run = airflow("dags", "test", "mlops_nightly", DAY, env=env)
    runs = airflow("dags", "list-runs", "-d", "mlops_nightly", "-o", "json", env=env | QUIET)
    [dag_run] = [r for r in json.loads(runs.stdout) if r["execution_date"].startswith(DAY)]
    states = airflow(
        "tasks", "states-for-dag-run", "mlops_nightly", dag_run["run_id"], "-o", "json", env=env | QUIET
    )
    return run, {t["task_id"]: t["state"] for t in json.loads(states.stdout)} | {"dag_run": dag_run["state"]}


def test_airflow_parses_the_dag_without_import_errors(airflow_env: dict[str, str]) -> None:
    errors = airflow("dags", "list-import-errors", "-o", "json", env=airflow_env | QUIET)
    assert errors.returncode == 0, errors.stderr[-3000:]
    assert json.loads(errors.stdout) == []
    tasks = airflow("tasks", "list", "mlops_nightly", env=airflow_env)
    assert tasks.returncode == 0, tasks.stderr[-3000:]
    assert tasks.stdout.split() == sorted(TASKS)


def test_a_nightly_run_succeeds_when_the_gate_promotes_the_scheduled_retrain(
    airflow_env: dict[str, str], stack: dict[str, str]
) -> None:
    env = dag_env(airflow_env, stack)
    run, states = run_nightly(env)
    output, tail = run.stdout + run.stderr, run.stdout[-6000:] + run.stderr[-6000:]
    assert run.returncode == 0, f"{states}\n{tail}"
    assert states == dict.fromkeys(TASKS, "success") | {"dag_run": "success"}, tail
    assert f"'window': {WINDOW}" in output  # the day batch scoring was asked for
    scored = re.search(r"Returned value was: \{'window': .*?'state': 'done'.*?'rows': (\d+)", output)
    assert scored and int(scored[1]) > 0, tail  # the day's applications, scored by the champion
    with api(stack, "training", "ops") as ops:
        latest = ops.get("/runs/latest").json()
    assert latest["status"] == "promoted" and f"promoted version {latest['model_version']}" in output
    with api(stack, "drift", "ops") as ops:
        [report] = ops.get("/reports", params={"limit": 1}).json()["reports"]
    assert report["status"] == "done" and report["id"] in output  # the DAG's report, pushed on XCom
    returned = re.search(r"Returned value was: \{'id': '([0-9a-f-]{36})', 'window': (\{.*?\})", output)
    assert returned and returned[2] == WINDOW, tail  # the DAG asked for a report of its day
    with api(stack, "drift", "ops") as ops:
        window = ops.get(f"/reports/{returned[1]}").json()["window"]
    assert window["requested"] == THE_DAY and 0 < window["rows"] <= ROWS, window  # the day's records
    assert THE_DAY["start"] <= window["start"] <= window["end"] < THE_DAY["end"], window
    assert window["may_be_incomplete"] is False, window  # 1500 records: none pruned


def test_a_nightly_run_fails_with_the_gates_reason_when_it_rejects(
    airflow_env: dict[str, str], stack: dict[str, str]
) -> None:
    policy = Path(stack["TRAINING_POLICY_FILE"])
    rejecting = policy.read_text().replace("min_labels: 200 ", "min_labels: 1000000 ")  # too few labels
    assert rejecting != policy.read_text()
    policy.write_text(rejecting)
    run, states = run_nightly(dag_env(airflow_env, stack))
    output, tail = run.stdout + run.stderr, run.stdout[-6000:] + run.stderr[-6000:]
    assert run.returncode != 0 and states["dag_run"] == "failed", tail
    assert states["wait_for_retrain_outcome"] == "success", f"{states}\n{tail}"
    assert states["fail_if_the_gate_rejected"] == "failed"
    with api(stack, "training", "ops") as ops:
        rejected = ops.get("/runs/latest").json()
    assert rejected["status"] == "rejected" and rejected["reasons"], rejected
    assert f"the gate rejected the scheduled retrain {rejected['request_id']}" in output
    assert rejected["reasons"][0] in output
