"""The closed loop on screen: a live table while it runs, then its figures and a PNG plot (accuracy of
served predictions over the stream, with the drift point, the drift alarms and the promotions)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.loop import LoopConfig, LoopRun
from infra.loop_figures import dump
from infra.loop_state import LoopState

ROLLING = 100  # labelled predictions per point of the accuracy curve


def live_table(state: LoopState, drift_at: int) -> Table:
    recent = [s for s in state.served if s.correct is not None][-200:]
    accuracy = f"{sum(bool(s.correct) for s in recent) / len(recent):.1%}" if recent else "-"
    phase = "stationary" if state.sent < drift_at else "drifted (every label swapped)"
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("stream", f"{state.sent} applications sent, {phase}")
    table.add_row("ingest", f"{state.clean} clean, {state.rejected} rejected")
    table.add_row("serving", f"{len(state.served)} predictions, {state.labelled} labelled, "
                             f"accuracy of the last 200: {accuracy}")  # fmt: skip
    table.add_row("model versions served", ", ".join(f"v{v}" for v in state.versions()) or "-")
    for mark in state.marks[-4:]:
        table.add_row(f"[bold]{mark.kind}[/] at row {mark.row}", mark.text)
    return table


async def drive(
    config: LoopConfig, bootstrap: str, serving: dict[str, Any], training: dict[str, Any], console: Console
) -> LoopState:
    """`serving`, `training`: httpx.AsyncClient arguments (base_url, headers) of the client's and
    ops' seats."""
    async with (
        httpx.AsyncClient(timeout=30, **serving) as client,
        httpx.AsyncClient(timeout=30, **training) as ops,
    ):
        return await _drive(LoopRun(config, bootstrap, client, ops), config, console)


async def _drive(run: LoopRun, config: LoopConfig, console: Console) -> LoopState:
    progress = Progress(
        TextColumn("5. the world drifts at row {task.fields[drift_at]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows"), TimeElapsedColumn(), console=console,
    )  # fmt: skip
    expected = config.rows_before + config.max_rows_after
    task = progress.add_task("loop", total=expected, drift_at=run.drift_at)

    def render() -> Group:
        progress.update(task, completed=run.state.sent)
        return Group(progress, live_table(run.state, run.drift_at))

    if not console.is_terminal:  # CI logs: a line every few seconds instead of a redrawn screen
        return await _with_log_lines(run, console)
    with Live(render(), console=console, refresh_per_second=4) as live:
        runner = asyncio.create_task(run.run())
        while not runner.done():
            live.update(render())
            await asyncio.sleep(0.25)
        live.update(render())
        return await runner


async def _with_log_lines(run: LoopRun, console: Console) -> LoopState:
    runner = asyncio.create_task(run.run())
    shown = 0
    while not runner.done():
        await asyncio.sleep(5)
        s = run.state
        console.print(f"  loop: {s.sent} sent, {s.clean} clean, {len(s.served)} served, "
                      f"{s.labelled} labelled, versions {s.versions()}")  # fmt: skip
        for mark in s.marks[shown:]:
            console.print(f"  loop: [bold]{mark.kind}[/] at row {mark.row}: {mark.text}")
        shown = len(s.marks)
    return await runner


def summary_table(f: dict[str, Any]) -> Table:
    table = Table(title="5. Drift, retraining and recovery", show_header=False)

    def pct(value: float | None, n: int) -> str:
        return "-" if value is None else f"{value:.1%} ({n} labelled predictions)"

    v1, v2, last = (f"v{f[k]}: " for k in ("first_version", "new_version", "final_version"))
    rows = {
        "drift injected": f"at row {f['drift_at_row']}: every label swapped (concept drift)",
        "accuracy before the drift": v1 + pct(f["accuracy_before"], f["predictions_before"]),
        "accuracy right after it": v1 + pct(f["accuracy_right_after"], f["predictions_right_after"]),
        "accuracy of the first retrain": v2 + pct(f["accuracy_new_version"], f["predictions_new_version"]),
        "accuracy after recovery": last + pct(f["accuracy_recovered"], f["predictions_recovered"]),
        "champions": " -> ".join(f"v{v}" for v in [f["first_version"], *f["promoted"]]),
        "drift alarm": f["alarm"] or "none",
        "its Evidently report (ops key)": f"{f['alarm_report']}.html" if f["alarm_report"] else "-",
        "detection delay": f"{_s(f['alarm_s_after_drift'])} after the first drifted record, "
        f"{f['alarm_rows_after_drift']} rows streamed by then",
        "first drifted record -> promoted": _s(f["promoted_s_after_drift"]),
        "first drifted record -> new champion serving": _s(f["new_champion_serving_s_after_drift"]),
        "serving latency over HTTP": f"p50 {_ms(f['serving_p50_ms'])}, p99 {_ms(f['serving_p99_ms'])} "
        "(the simulated client, concurrent)",
        "stream": f"{f['records_sent']} records sent at {f['records_sent'] / f['elapsed_s']:.0f}/s, "
        f"{f['clean']} clean, {f['not_served']} not served",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    return table


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def save(state: LoopState, drift_at: int, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "closed-loop.json"
    data.write_text(dump(state, drift_at))
    return data, plot(json.loads(data.read_text()), out_dir / "closed-loop.png")


def plot(run: dict[str, Any], path: Path) -> Path:
    """Rolling accuracy over the stream; the drift point, drift alarms and promotions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    served = sorted((row, correct) for row, _, _, correct, _ in run["served"] if correct is not None)
    rows = [r for r, _ in served]
    window: list[bool] = []
    curve = []
    for _, correct in served:
        window = [*window[-(ROLLING - 1) :], bool(correct)]
        curve.append(sum(window) / len(window))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    label = f"accuracy of served predictions (last {ROLLING})"
    ax.plot(rows, curve, color="#1f4e79", linewidth=1.4, label=label)
    figs = run["figures"]
    ax.axvline(figs["drift_at_row"], color="grey", linestyle="--", label="drift injected (labels swapped)")
    for i, mark in enumerate(m for m in run["marks"] if m["kind"] == "drift"):
        ax.axvline(mark["row"], color="#c0392b", linewidth=1, label="drift alarm" if i == 0 else "_nolegend_")
    for i, mark in enumerate(m for m in run["marks"] if m["kind"] == "promoted"):
        label = "new champion promoted" if i == 0 else "_nolegend_"
        ax.axvline(mark["row"], color="#27ae60", linewidth=2, label=label)
    for i, mark in enumerate(m for m in run["marks"] if m["kind"] == "rejected"):
        label = "candidate rejected by the gate" if i == 0 else "_nolegend_"
        ax.axvline(mark["row"], color="#e67e22", linewidth=1.5, linestyle=":", label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel("application (row of the stream)")
    ax.set_ylabel("accuracy")
    ax.set_title("The closed loop: drift detected, retrained, promoted, recovered")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_loop(
    config: LoopConfig, bootstrap: str, serving: dict[str, Any], training: dict[str, Any], console: Console
) -> LoopState:
    return asyncio.run(drive(config, bootstrap, serving, training, console))
