"""The demo's last screen: the run's figures from each service and where to look next."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, service_port


def show_summary(
    settings: InfraSettings, console: Console, running: set[str], figures: dict[str, Any]
) -> None:
    table = Table(title="Summary", show_header=False)
    ingest, loop, audit = figures.get("ingest"), figures.get("loop"), figures.get("audit")
    if ingest:
        rate = f"{ingest['records_per_s']:.0f} records/s"
        table.add_row(
            "platform",
            f"{rate} end to end (from producer start: clean or rejected, features online, audited)",
        )
    if loop:
        p99, p50 = loop["serving_p99_ms"], loop["serving_p50_ms"]
        table.add_row("serving p99", "-" if p99 is None else f"{p99:.1f} ms over HTTP (p50 {p50:.1f} ms)")
        table.add_row("drift detection delay", _delay(loop))
        table.add_row("drift -> new champion serving", _s(loop["new_champion_serving_s_after_drift"])
                      + " (first drifted record to the first answer of the new version)")  # fmt: skip
        keys = ("accuracy_before", "accuracy_right_after", "accuracy_new_version", "accuracy_recovered")
        table.add_row("accuracy before / right after / first retrain / recovered", " / ".join(
            "-" if loop[k] is None else f"{loop[k]:.1%}" for k in keys
        ))  # fmt: skip
        table.add_row("champions", " -> ".join(f"v{v}" for v in [loop["first_version"], *loop["promoted"]]))
        table.add_row("loop closed", "[green]yes[/]" if loop["closed"] else "[red]no[/]")
        table.add_row("plot of the run", loop["plot"])
    late = figures.get("late_labels")
    if late:
        table.add_row("labels months late", _late(late))
    if audit:
        verdict = "intact" if audit["intact"] else "BROKEN"
        table.add_row("audit", f"{audit['events']} events in the hash chain, {verdict}, "
                               f"verified in {audit['verify_s']:.2f} s")  # fmt: skip
    console.print(table)
    console.print(where_to_look(settings, running))


def _delay(loop: dict[str, Any]) -> str:
    if loop["alarm_s_after_drift"] is None:
        return "no alarm"
    rows = loop["alarm_rows_after_drift"]
    return f"{loop['alarm_s_after_drift']:.1f} s ({rows} rows streamed since the drift)"


def _late(late: dict[str, Any]) -> str:
    if late["alarm_rows_after_change"] is None:
        return "no estimated drop within the run"
    ahead = late["rows_before_first_label"]
    when = (
        f"{ahead} rows ({late['days_before_first_label']:.0f} simulated days) before the first label"
        " of the new applicants arrived"
        if ahead is not None
        else "no label of the new applicants within the run"
    )
    return f"estimated drop raised {when} ({late['alarm_rows_after_change']} rows after the change)"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def where_to_look(settings: InfraSettings, running: set[str]) -> Table:
    table = Table(title="Where to look (the stack is still running)", show_header=False)
    for name in SERVICE_ORDER:
        if name in running:
            table.add_row(f"{name} API docs", f"http://127.0.0.1:{service_port(settings, name)}/docs")
    if "drift" in running:
        reports = f"http://127.0.0.1:{service_port(settings, 'drift')}/reports"
        table.add_row("Evidently drift reports (ops key)", reports)
    table.add_row("MLflow UI", mlflow_ui_command(settings))
    table.add_row("AsyncAPI document", str(REPO_ROOT / "docs" / "asyncapi.json"))
    keys = (settings.secrets_dir / "api-keys.json").resolve()
    table.add_row("API keys of the development roles", str(keys))
    table.add_row("drift and model events live", ".venv/bin/mlops watch")
    table.add_row("memory of every component", ".venv/bin/mlops status")
    table.add_row("stop the stack", "make down (or .venv/bin/mlops down)")
    return table  # fmt: skip


def mlflow_ui_command(settings: InfraSettings) -> str:
    """The MLflow UI on the stack's store, light enough for a 2-core machine: one worker, and none
    of MLflow 3's background job runners (MLFLOW_SERVER_ENABLE_JOB_EXECUTION defaults to on). The
    cluster profile runs a tracking server, whose UI is its own address."""
    if settings.server_stores:
        from infra.mlflow_server import LocalMlflowServer

        where = settings.secrets_dir / "mlflow.json"
        return f"{LocalMlflowServer(settings).url} (login `mlops`, its password in {where})"
    store = (settings.state_dir / "mlflow" / "mlflow.db").resolve()
    return (
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow ui --workers 1 "
        f"--backend-store-uri sqlite:///{store}"
    )
