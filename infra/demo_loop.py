"""The demo's model steps: train and promote a first champion from the streamed data, then serve it.

Each step talks to the running services over HTTP with the development key of the role a person in
that seat would hold (ops trains, a client predicts), as a user of the platform would.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from infra.settings import InfraSettings
from infra.supervisor import service_port


def client(settings: InfraSettings, service: str, role: str, timeout_s: float = 60) -> httpx.Client:
    return httpx.Client(timeout=timeout_s, **client_args(settings, service, role))


def client_args(settings: InfraSettings, service: str, role: str) -> dict[str, Any]:
    """base_url and headers of a role's seat at a service (for an httpx client of either kind)."""
    key = json.loads((settings.secrets_dir / "api-keys.json").read_text())[f"dev-{role}"]["key"]
    return {"base_url": f"http://127.0.0.1:{service_port(settings, service)}", "headers": {"X-API-Key": key}}


def train_first_champion(settings: InfraSettings, console: Console, timeout_s: float = 180) -> dict[str, Any]:
    """Ask for training (ops role) and wait for its outcome; labels arrive late, so retry a refusal
    for too few labels while they keep coming."""
    deadline = time.monotonic() + timeout_s
    with client(settings, "training", "ops") as ops, console.status("3. training the first model..."):
        while True:
            started = time.monotonic()
            request_id = ops.post("/train", json={"reason": "manual"}).raise_for_status().json()["event_id"]
            outcome_requested_at = started
            outcome = _await_outcome(ops, request_id, deadline)
            if outcome["status"] == "promoted" or time.monotonic() > deadline:
                break
            if not any("label" in reason for reason in outcome.get("reasons", [])):
                break
            time.sleep(3)
    elapsed = time.monotonic() - started
    table = Table(title=f"3. Training and the validation gate ({elapsed:.1f} s, request to outcome)",
                  show_header=False)  # fmt: skip
    table.add_row("outcome", f"{outcome['status']} version {outcome.get('model_version')}")
    for name in ("auc", "log_loss", "brier"):
        if name in outcome.get("metrics", {}):
            table.add_row(name, f"{outcome['metrics'][name]:.3f}")
    for check in (outcome.get("evidence") or {}).get("checks", []):
        mark = "[green]pass[/]" if check["passed"] else "[red]fail[/]"
        value = "" if check.get("value") is None else f"{check['value']:.3f}"
        table.add_row(f"gate: {check['name']}", f"{mark} {value} (threshold {check.get('threshold')})")
    for reason in outcome.get("reasons", []):
        table.add_row("reason", reason)
    table.add_row("MLflow run", f"{outcome.get('run_id')}: mlflow ui --backend-store-uri "
                                f"sqlite:///{settings.state_dir.resolve()}/mlflow/mlflow.db")  # fmt: skip
    console.print(table)
    return {**outcome, "requested_at": outcome_requested_at}


def _await_outcome(ops: httpx.Client, request_id: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        response = ops.get("/runs/latest")
        if response.status_code == 200 and response.json().get("request_id") == request_id:
            return dict(response.json())
        time.sleep(0.5)
    raise SystemExit(f"training request {request_id} had no outcome in time")


def serve_predictions(
    settings: InfraSettings, console: Console, entity_ids: list[str], trained: dict[str, Any]
) -> dict[str, Any]:
    """Wait for serving to swap to the new champion, then predict for streamed applications by key."""
    with client(settings, "serving", "client") as api, console.status("4. serving predictions..."):
        deadline = time.monotonic() + 120
        while _serving_version(api) != trained["model_version"] and time.monotonic() < deadline:
            time.sleep(0.05)
        to_serving = time.monotonic() - trained["requested_at"]
        latencies, answers = [], []
        for entity_id in entity_ids:
            started = time.perf_counter()
            response = api.post("/predict", json={"entity_id": entity_id})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            answers.append(response.json())
    first = answers[0]
    decisions = {
        d: sum(a["decision"] == d for a in answers) for d in sorted({a["decision"] for a in answers})
    }
    table = Table(
        title=f"4. Serving ({len(answers)} predictions by entity key, online features)", show_header=False
    )
    table.add_row("model", f"{first['model_name']} version {first['model_version']}")
    table.add_row("training requested -> champion serving", f"{to_serving:.1f} s (no restart)")
    table.add_row("one prediction", f"{first['prediction_id']}: {entity_ids[0]} score {first['score']:.3f} "
                                    f"-> {first['decision']}")  # fmt: skip
    table.add_row("decisions", ", ".join(f"{d}: {n}" for d, n in decisions.items()))
    latencies.sort()
    table.add_row("latency over HTTP", f"p50 {statistics.median(latencies):.1f} ms, "
                                       f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms "
                                       "(sequential, one client)")  # fmt: skip
    console.print(table)
    return dict(first)


def _serving_version(api: httpx.Client) -> str | None:
    response = api.get("/model")
    champion = response.json().get("champion") if response.status_code == 200 else None
    return str(champion["model_version"]) if champion else None


def explain_prediction(settings: InfraSettings, console: Console, prediction: dict[str, Any]) -> None:
    """The served prediction explained to the applicant (plain language) and to the analyst (SHAP,
    LIME, counterfactual, fidelity), and where the champion's global explanation is stored."""
    prediction_id, version = prediction["prediction_id"], str(prediction["model_version"])
    with client(settings, "explain", "client", timeout_s=120) as api, console.status("7. explaining it..."):
        deadline = time.monotonic() + 60  # explain learns of the prediction from prediction.made
        while (response := api.get(f"/explain/{prediction_id}")).status_code == 404:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        response.raise_for_status()
        local = response.json()
        found = api.get(f"/explanations/global/{version}").json()
        while not found["available"] and time.monotonic() < deadline:
            time.sleep(0.5)
            found = api.get(f"/explanations/global/{version}").json()
    table = Table(title=f"7. Explanation of prediction {prediction_id[:8]}", show_header=False)
    table.add_row("for the applicant", local["summary"])
    top = (local.get("shap") or {}).get("contributions") or []
    table.add_row("top SHAP factors", ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in top[:3]))
    table.add_row("fidelity", ", ".join(f"{k}={v}" for k, v in sorted(local["fidelity"].items())))
    table.add_row("time", ", ".join(f"{k} {v:.0f} ms" for k, v in local.get("timings_ms", {}).items()))
    table.add_row(f"global explanation of v{version}", str(found["artifact_uri"] or "still computing"))
    console.print(table)
