"""The nightly pipeline as an Airflow DAG, through the platform's own HTTP routes only (ops role):

1. batch-score the day:      POST {serving}/batch-scores, then GET {serving}/batch-scores/{id} until done;
2. a fresh Evidently report of the day: POST {drift}/reports {"start", "end"} (the clean records whose
   event time is in the day), then GET {drift}/reports/{id} until made;
3. a scheduled retrain:      POST {training}/train {"reason": "schedule"};
4. its outcome:              GET {training}/requests/{event id} until the run finished;
5. the run fails if the gate rejected the candidate, with the gate's reasons.

It runs in Airflow's own venv (scripts/install-airflow.sh), so it imports nothing of the platform: the
standard library speaks HTTP. "The day" is the run's data interval: the scheduled (or backfilled) run
of logical date D scores [D 00:00Z, D+1 00:00Z) and starts just after it, at D+1 00:00Z; a manual run,
`airflow dags test` included, of D scores the day before D, [D-1 00:00Z, D 00:00Z) (Airflow's interval
for a manual run of a daily DAG ends at its logical date).

Settings, each an Airflow Variable or else an environment variable of the same name (defaults: the
ports `mlops up` gives a local stack): MLOPS_SERVING_URL, MLOPS_DRIFT_URL, MLOPS_TRAINING_URL; the ops
key as MLOPS_OPS_API_KEY, or read from MLOPS_OPS_KEY_FILE (the stack's secrets/api-keys.json, whose
`dev-ops` key is used, or a file holding only the key); MLOPS_NIGHTLY_WAIT_S (longest wait for each
step, default 3600) and MLOPS_NIGHTLY_POLL_S (seconds between polls, default 5).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pendulum
from airflow.decorators import dag, task
from airflow.exceptions import AirflowFailException
from airflow.models import Variable

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULTS = {
    "MLOPS_TRAINING_URL": "http://127.0.0.1:8103",  # `mlops up`: ports from 8101 in the services' order
    "MLOPS_SERVING_URL": "http://127.0.0.1:8104",
    "MLOPS_DRIFT_URL": "http://127.0.0.1:8105",
    "MLOPS_OPS_KEY_FILE": str(REPO_ROOT / ".local" / "secrets" / "api-keys.json"),
    "MLOPS_NIGHTLY_WAIT_S": "3600",
    "MLOPS_NIGHTLY_POLL_S": "5",
}
DEV_OPS_KEY = "dev-ops"  # the name `mlops up` gives the development ops key


def setting(name: str) -> str:
    """An Airflow Variable, else the environment, else the local stack's default. Read inside tasks
    only: a Variable read at parse time would hit the metadata DB at every parse."""
    value: str = Variable.get(name, default_var=os.environ.get(name, DEFAULTS.get(name, "")))
    return value


def ops_key() -> str:
    if key := setting("MLOPS_OPS_API_KEY"):
        return key
    path = Path(setting("MLOPS_OPS_KEY_FILE"))
    if not path.is_file():
        raise AirflowFailException(
            f"no ops key: set MLOPS_OPS_API_KEY, or MLOPS_OPS_KEY_FILE ({path} is missing)"
        )
    text = path.read_text().strip()
    if not text.startswith("{"):
        return text
    keys = json.loads(text)
    if DEV_OPS_KEY not in keys:
        raise AirflowFailException(f"no {DEV_OPS_KEY!r} key in {path} (it has {', '.join(sorted(keys))})")
    return str(keys[DEV_OPS_KEY]["key"])


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One request with the ops key: (status, JSON body). A 4xx/5xx is returned, not raised, so each
    step says what it expected; an unreachable service fails the task with the reason."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("X-API-Key", ops_key())
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, {"detail": raw.decode(errors="replace")[:500]}
    except urllib.error.URLError as error:  # refused, unknown host, timeout: one line, not a traceback
        raise AirflowFailException(f"{method} {url}: {error.reason}") from error


def expect(status: int, body: dict[str, Any], wanted: int, what: str) -> dict[str, Any]:
    if status != wanted:  # a 404 too: a missing route is a broken platform, never a step to skip
        raise AirflowFailException(f"{what}: HTTP {status} (expected {wanted}): {body.get('detail', body)}")
    return body


def poll(url: str, what: str, finished: Any) -> dict[str, Any]:
    """GET `url` until `finished(status, body)` says so (True) or fails the task (it raises); a
    404 means not there yet. Gives up after MLOPS_NIGHTLY_WAIT_S."""
    wait_s, every_s = float(setting("MLOPS_NIGHTLY_WAIT_S")), float(setting("MLOPS_NIGHTLY_POLL_S"))
    deadline = time.monotonic() + wait_s
    while True:
        status, body = call("GET", url)
        if status not in (200, 404):
            raise AirflowFailException(f"{what}: HTTP {status} from {url}: {body.get('detail', body)}")
        if status == 200 and finished(body):
            return body
        if time.monotonic() > deadline:
            raise AirflowFailException(f"{what}: not finished after {wait_s:.0f} s (last answer: {body})")
        time.sleep(every_s)


@dag(
    dag_id="mlops_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["mlops"],
    doc_md=__doc__,
)
def mlops_nightly() -> None:
    @task
    def batch_score_the_day(data_interval_start: Any = None, data_interval_end: Any = None) -> dict[str, Any]:
        serving = setting("MLOPS_SERVING_URL")
        window = {"start": data_interval_start.isoformat(), "end": data_interval_end.isoformat()}
        status, body = call("POST", f"{serving}/batch-scores", window)
        job = expect(status, body, 202, f"POST {serving}/batch-scores {window}")

        def done(answer: dict[str, Any]) -> bool:  # the job's `state`: running, done or failed (with why)
            if answer.get("state") == "failed":
                raise AirflowFailException(f"batch scoring {job['job_id']} failed: {answer}")
            return answer.get("state") == "done"

        result = poll(f"{serving}/batch-scores/{job['job_id']}", "batch scoring", done)
        return {"window": window, **result}

    @task
    def make_drift_report(data_interval_start: Any = None, data_interval_end: Any = None) -> dict[str, Any]:
        drift = setting("MLOPS_DRIFT_URL")
        window = {"start": data_interval_start.isoformat(), "end": data_interval_end.isoformat()}
        status, body = call("POST", f"{drift}/reports", window)
        asked = expect(status, body, 202, f"POST {drift}/reports {window}")

        def made(answer: dict[str, Any]) -> bool:
            if answer.get("status") == "failed":
                raise AirflowFailException(f"drift report {asked['id']} failed: {answer.get('error')}")
            return answer.get("status") == "done"

        report = poll(f"{drift}/reports/{asked['id']}", "the drift report", made)
        used = report.get("window", {})  # the bounds asked for, the rows the day held, and any pruning
        return {  # coalesced: the id it was made as
            "id": report["id"],
            "window": used.get("requested"),
            "rows": used.get("rows"),
            "may_be_incomplete": used.get("may_be_incomplete"),
            "links": report.get("links", {}),
        }

    @task
    def request_scheduled_retrain() -> str:
        training = setting("MLOPS_TRAINING_URL")
        status, body = call("POST", f"{training}/train", {"reason": "schedule"})
        return str(expect(status, body, 202, f"POST {training}/train")["event_id"])

    @task
    def wait_for_retrain_outcome(request_id: str) -> dict[str, Any]:
        training = setting("MLOPS_TRAINING_URL")
        outcome = poll(f"{training}/requests/{request_id}", f"training request {request_id}", bool)
        keep = ("request_id", "status", "reasons", "model_version", "previous_version", "run_id", "metrics")
        return {name: outcome.get(name) for name in keep}

    @task
    def fail_if_the_gate_rejected(outcome: dict[str, Any]) -> str:
        if outcome["status"] != "promoted":
            reasons = "; ".join(outcome.get("reasons") or ["no reason given"])
            request_id = outcome["request_id"]
            raise AirflowFailException(f"the gate rejected the scheduled retrain {request_id}: {reasons}")
        return f"promoted version {outcome['model_version']} (was {outcome['previous_version']})"

    scored = batch_score_the_day()
    report = make_drift_report()
    request = request_scheduled_retrain()
    scored >> report >> request
    fail_if_the_gate_rejected(wait_for_retrain_outcome(request))


mlops_nightly()
