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

from infra.demo_summary import mlflow_ui_command
from infra.settings import InfraSettings
from infra.supervisor import service_port


def client(settings: InfraSettings, service: str, role: str, timeout_s: float = 60) -> httpx.Client:
    return httpx.Client(timeout=timeout_s, **client_args(settings, service, role))


def client_args(settings: InfraSettings, service: str, role: str) -> dict[str, Any]:
    """base_url and headers of a role's seat at a service (for an httpx client of either kind)."""
    key = json.loads((settings.secrets_dir / "api-keys.json").read_text())[f"dev-{role}"]["key"]
    return {"base_url": f"http://127.0.0.1:{service_port(settings, service)}", "headers": {"X-API-Key": key}}


def train_first_champion(settings: InfraSettings, console: Console, timeout_s: float = 300) -> dict[str, Any]:
    """Ask for training once (ops role) and wait for its outcome. The producer has published every label
    before it exits; the request carries the labels topic's end offsets (its label watermark) and the
    run waits until training has stored every label up to them, so it learns from all of them, however
    far the labels consumer happened to be when the request came."""
    deadline = time.monotonic() + timeout_s
    with client(settings, "training", "ops") as ops, console.status("3. training the first model..."):
        started = time.monotonic()
        request = ops.post("/train", json={"reason": "manual"}).raise_for_status().json()
        outcome = _await_outcome(ops, request["event_id"], deadline)
    elapsed = time.monotonic() - started
    table = Table(title=f"3. Training and the validation gate ({elapsed:.1f} s, request to outcome)",
                  show_header=False)  # fmt: skip
    table.add_row("outcome", f"{outcome['status']} version {outcome.get('model_version')}")
    table.add_row("labels used", _labels_used(outcome))
    table.add_row("window", str(request.get("window_note", "all history")))
    for name in ("auc", "log_loss", "brier"):
        if name in outcome.get("metrics", {}):
            table.add_row(name, f"{outcome['metrics'][name]:.3f}")
    evidence = outcome.get("evidence") or {}
    if evidence.get("verdict"):
        table.add_row("gate verdict", f"{evidence['verdict']} ({evidence.get('method')})")
    for check in evidence.get("checks", []):
        table.add_row(f"gate: {check['name']}", _check_row(check))
    for reason in outcome.get("reasons", []):
        table.add_row("reason", reason)
    table.add_row("MLflow run", f"{outcome.get('run_id')}: {mlflow_ui_command(settings)}")
    console.print(table)
    return {**outcome, "requested_at": started}


def _check_row(check: dict[str, Any]) -> str:
    """'pass 0.858 [0.821, 0.889] (threshold 0.65)': the outcome, the estimate and its interval."""
    outcome = check.get("outcome") or ("pass" if check.get("passed") else "fail")
    colour = {"pass": "green", "fail": "red"}.get(outcome, "yellow")
    value = "" if check.get("value") is None else f" {check['value']:.3f}"
    spread = f" [{check['low']:.3f}, {check['high']:.3f}]" if check.get("low") is not None else ""
    return f"[{colour}]{outcome}[/]{value}{spread} (threshold {check.get('threshold')})"


def _labels_used(outcome: dict[str, Any]) -> str:
    """How many labelled entities the run asked the feature store about and how many rows it learnt
    from, and whether it had every label published before the request (its watermark)."""
    counts = outcome.get("counts") or {}
    watermark = (outcome.get("lineage") or {}).get("labels_watermark") or {}
    if not watermark.get("watermark"):
        caught = "no label watermark"
    elif watermark.get("reached"):
        caught = f"every label up to the watermark ({sum(watermark['watermark'].values())} on the topic)"
    else:
        short, waited = watermark.get("records_short"), watermark.get("waited_s")
        caught = f"watermark NOT reached: {short} labels short after {waited} s"
    used = f"{counts.get('labels_requested', '?')} labelled, {counts.get('rows_usable', '?')} usable rows"
    return f"{used}; {caught}"


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
        # 404: explain has not read prediction.made yet; 503/504: busy (e.g. computing a new
        # champion's global explanation on a loaded machine). Both pass; the demo waits for them.
        deadline = time.monotonic() + 180
        while (response := api.get(f"/explain/{prediction_id}")).status_code in (404, 503, 504):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5 if response.status_code == 404 else 5)
        if response.status_code != 200:
            code = response.json().get("code") if response.content else None
            console.print(f"7. no explanation of {prediction_id[:8]}: HTTP {response.status_code} ({code})")
            return
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
