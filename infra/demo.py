"""`make demo`: the stack up, then each step that the running services make possible.

1. the bus: a contract event out through the kit and back through a FastStream subscriber, and a
   malformed message dead-lettered with its reason (always);
2. ingest: the demo dataset streamed with PII and malformed records, and the clean/rejected counts
   (when the ingest service runs);
3. training: a first model trained from the streamed data and labels, through the validation gate
   (when features and training run);
4. serving: predictions by entity key from the champion with online features (when serving runs);
5. the closed loop: applications stream at a steady rate, a client asks for each decision and
   reports the truth later, every label swaps from a known row on; the drift service alarms, training
   retrains on the new world, the gate promotes, serving swaps, accuracy recovers (infra/loop.py;
   when drift, training and serving run);
6. audit: every event recorded, counted by type, the hash chain verified, and the lineage of one
   served prediction (when audit runs);
7. explain: that prediction explained in plain language and by SHAP, LIME and a counterfactual, with
   their fidelity, and where the champion's global explanation is (when explain runs);
8. labels months late: once the loop closed, labels come after 90+ simulated days (some never), a
   new channel brings riskier applicants, and the drift service's estimate of the champion's accuracy
   (from its calibrated scores alone) raises a drop before any label of them has come
   (infra/late_labels.py; it informs, the exit code does not depend on it);
9. an analyst in the loop, with `--with-label-studio`: uncertain decisions become Label Studio tasks,
   a scripted analyst answers one, and its label comes back as an event the audit trail links to the
   task and the prediction (infra/annotation_step.py; when the annotation service runs).

Then a summary: the figures, the plot, and where to look. The exit code is 0 only when every step
that ran succeeded and, with the whole stack running, the loop closed (drift detected, a new
champion promoted and serving) and the audit chain verified.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from infra import annotation_step
from infra.demo_loop import client, client_args, explain_prediction, serve_predictions, train_first_champion
from infra.demo_summary import show_summary
from infra.lag import end_offsets_now, wait_caught_up
from infra.late_labels_step import run_step as run_late_labels
from infra.loop import LoopConfig
from infra.loop_figures import figures
from infra.loop_view import run_loop, save, summary_table
from infra.roundtrip import bus_round_trip
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import CORE_SERVICES, Supervisor

DEMO_ROWS = 2000


def run_demo(
    settings: InfraSettings, console: Console, loop: LoopConfig | None = None, late_labels: bool = True
) -> int:
    running = {name for name, c in Supervisor(settings).load().items() if c.kind == "service"}
    figures: dict[str, Any] = {}
    show_bus(settings, console)
    streamed = stream_applications(settings, console) if "ingest" in running else None
    if streamed:
        figures["ingest"] = streamed
        (settings.state_dir / "demo").mkdir(parents=True, exist_ok=True)
        entities = json.dumps(streamed["first_entities"])
        (settings.state_dir / "demo" / annotation_step.ENTITIES_FILE).write_text(entities + "\n")
    prediction: dict[str, Any] | None = None
    if streamed and {"features", "training"} <= running:
        outcome = train_first_champion(settings, console)
        if outcome["status"] == "promoted" and "serving" in running:
            prediction = serve_predictions(settings, console, streamed["first_entities"], outcome)
    loop_ran = prediction is not None and "drift" in running
    if loop_ran:
        figures["loop"] = closed_loop(settings, console, loop or LoopConfig())
    code = 0
    if "audit" in running:
        expected = streamed["records"] if streamed else None
        code, figures["audit"] = show_audit(settings, console, expected, prediction)
    if prediction is not None and "explain" in running:
        explain_prediction(settings, console, prediction)
    closed = bool(figures.get("loop", {}).get("closed"))
    if closed and late_labels:  # after the loop: nothing waits to retrain, the champion is settled
        figures["late_labels"] = run_late_labels(settings, console)
    if prediction is not None and streamed and {"annotation", "audit"} <= running:
        try:
            figures["annotation"] = annotation_step.run_step(settings, console, streamed["first_entities"])
        except (annotation_step.StepFailed, httpx.HTTPError) as failure:
            console.print(f"[red]9. the annotation round trip failed:[/] {failure}")
            code = code or 1
    show_summary(settings, console, running, figures)
    if running >= set(CORE_SERVICES) and not closed:
        console.print("[red]the loop did not close[/]: see the table of step 5 and `mlops status`")
        code = code or 1
    return code


def closed_loop(settings: InfraSettings, console: Console, config: LoopConfig) -> dict[str, Any]:
    serving, training = client_args(settings, "serving", "client"), client_args(settings, "training", "ops")
    state = run_loop(config, settings.bootstrap_servers, serving, training, console)
    f = figures(state, config.rows_before)
    data, png = save(state, config.rows_before, settings.state_dir / "demo")
    console.print(summary_table(f))
    # Closed as the loop itself judges it (its final champion measured), not merely "a new champion
    # serves": a follow-up promoted as the time ran out would leave no recovery figure behind.
    closed = state.closed and f["new_champion_serving_s_after_drift"] is not None and f["alarm"] is not None
    return f | {"closed": closed, "plot": str(png), "data": str(data)}


def show_bus(settings: InfraSettings, console: Console) -> None:
    event, source, latency_ms, letter = bus_round_trip(settings.bootstrap_servers)
    table = Table(title="1. An event through the real broker", show_header=False)
    table.add_row("event", f"{event.event_type} v{event.schema_version}  id {event.event_id}")
    table.add_row("travelled", f"{source.topic} partition {source.partition} offset {source.offset}")
    table.add_row("round trip", f"{latency_ms:.1f} ms (publish with acks=all -> subscriber)")
    table.add_row(
        "malformed message",
        f"dead-lettered from offset {letter.payload.source.offset}: {letter.payload.reason.code}",
    )
    console.print(table)


def stream_applications(settings: InfraSettings, console: Console) -> dict[str, Any]:
    """Replay the loan applications with PII (1 malformed record in 50) and wait for every outcome."""
    command = [
        sys.executable,
        "-m",
        "workbench.demo_producer",
        "--rows",
        str(DEMO_ROWS),
        "--rate",
        "0",
        "--bad-every",
        "50",
        "--label-delay-s",
        "1",
        "--bootstrap",
        settings.bootstrap_servers,
        "--follow",
    ]
    start_ends = end_offsets_now(settings.bootstrap_servers, ["records.raw", "records.clean"])
    with console.status(f"2. streaming {DEMO_ROWS} loan applications through the platform..."):
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        outcomes_at = time.monotonic()
        through = wait_caught_up(settings.bootstrap_servers, start_ends)
    if result.returncode != 0:
        console.print(f"[red]the demo producer failed[/]:\n{result.stderr[-2000:]}")
        raise SystemExit(1)
    summary = json.loads(result.stdout)
    outcomes: dict[str, int] = summary["outcomes"]
    elapsed = time.monotonic() - started
    table = Table(title=f"2. Ingest ({outcomes_at - started:.1f} s, producer start to last outcome)",
                  show_header=False)  # fmt: skip
    table.add_row("raw records sent", str(sum(outcomes.values())))
    table.add_row("clean", str(outcomes.get("clean", 0)))
    for code, count in sorted(outcomes.items()):
        if code not in ("clean", "missing"):
            table.add_row(f"rejected: {code}", str(count))
    table.add_row("missing", str(outcomes.get("missing", 0)))
    records = sum(outcomes.values())
    through_text = (
        f"{records / elapsed:.0f} records/s: {elapsed:.1f} s until every record was clean or rejected, "
        "its features online and it was in the audit chain"
    )
    table.add_row("end to end", through_text if through else "the platform did not catch up in time")
    console.print(table)
    return {
        "records": records, "first_entities": summary["first_entities"], "records_per_s": records / elapsed
    }  # fmt: skip


def show_audit(
    settings: InfraSettings, console: Console, expected: int | None, prediction: dict[str, Any] | None
) -> tuple[int, dict[str, Any]]:
    with client(settings, "audit", "auditor", timeout_s=120) as auditor:
        summary = _await_audit(auditor, expected, prediction)
        started = time.perf_counter()
        verify = auditor.get("/verify").json()
        verify_s = time.perf_counter() - started
        lineage = auditor.get(f"/lineage/{prediction['prediction_id']}").json() if prediction else None
    table = Table(title="6. Audit record", show_header=False)
    for name, count in sorted(summary["events_by_type"].items()):
        table.add_row(name, str(count))
    for topic, count in sorted(summary["raw_by_topic"].items()):
        table.add_row(f"{topic} (digests only: raw records carry PII)", str(count))
    table.add_row("hash chain", f"{summary['chain_length']} rows, head {summary['head_hash'][:16]}...")
    verdict = "[green]intact[/]" if verify["intact"] else f"[red]BROKEN at row {verify['broken_at']}[/]"
    table.add_row("verify", f"{verdict} ({verify['checked']} rows checked in {verify_s:.2f} s over HTTP)")
    if lineage is not None:
        table.add_row("lineage of one prediction", _lineage_line(lineage))
    console.print(table)
    found = {"events": summary["chain_length"], "intact": verify["intact"], "verify_s": verify_s}
    return (0 if verify["intact"] else 1), found


def _lineage_line(lineage: dict[str, Any]) -> str:
    model, run = lineage["model"], lineage.get("training_run") or {}
    request = lineage.get("training_request") or {}
    window = lineage.get("training_window") or {}
    trigger = (lineage.get("drift") or request).get("event_type", "?")
    # A manual request has no drift event behind it: that step is absent by design, not missing.
    missing = [m for m in lineage.get("missing", []) if not (m == "drift" and request)]
    return (
        f"prediction {lineage['prediction_id'][:8]} -> {model['name']} v{model['version']} -> "
        f"run {str(run.get('run_id'))[:8]} (window {window.get('start')} .. {window.get('end')}, "
        f"dataset {(lineage.get('dataset') or {}).get('version')}) -> started by {trigger}"
        + (f"; not recorded: {', '.join(missing)}" if missing else "")
    )


def _await_audit(
    auditor: httpx.Client, expected: int | None, prediction: dict[str, Any] | None, timeout_s: float = 60
) -> dict[str, Any]:
    """Audit consumes asynchronously: wait until it has recorded what the demo produced."""
    deadline = time.monotonic() + timeout_s
    while True:
        summary: dict[str, Any] = auditor.get("/summary").json()
        by_type = summary["events_by_type"]
        outcomes = by_type.get("RecordCleaned", 0) + by_type.get("RecordRejected", 0)
        recorded = expected is None or outcomes >= expected
        if prediction is not None:
            found = auditor.get("/lineage/" + prediction["prediction_id"])
            recorded = recorded and found.status_code == 200
        if recorded or time.monotonic() > deadline:
            return summary
        time.sleep(0.5)
