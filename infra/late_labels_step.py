"""Step 8 of the demo on the screen: drive the late-labels world (infra/late_labels.py), then show
the estimate, the alarm and the policy's answer, and keep the figures in `<state>/demo/late-labels.json`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from infra.demo_loop import client_args
from infra.late_labels import LateLabelsConfig, LateLabelsRun, LateState, figures
from infra.settings import InfraSettings


def run_step(
    settings: InfraSettings, console: Console, config: LateLabelsConfig | None = None
) -> dict[str, Any]:
    """Step 8: drive the late-labels world, then show the estimate, the alarm and the policy's answer."""
    config = config or LateLabelsConfig()

    async def drive() -> LateState:
        async with (
            httpx.AsyncClient(timeout=30, **client_args(settings, "serving", "client")) as serving,
            httpx.AsyncClient(timeout=30, **client_args(settings, "drift", "ops")) as drift,
        ):
            return await LateLabelsRun(config, settings.bootstrap_servers, serving, drift).run()

    with console.status("8. labels that come months late: streaming until the estimate says something..."):
        state = asyncio.run(drive())
        f = figures(state, config.delays)
        f["decision"] = (
            _policy_answer(settings, state.alarm_event_id) if state.alarm_row is not None else None
        )
    table = Table(
        title="8. Labels that come months late (performance estimated before they do)", show_header=False
    )
    table.add_row("the world", f["time_compression"])
    first = f"v{f['champion']}: {f['rows_before_change']} usual applications first (its estimate's reference)"
    table.add_row("champion", first + ", then a new channel of riskier applicants")
    if f["alarm_rows_after_change"] is None:
        table.add_row(
            "estimated drop", f"[red]none[/] within {state.sent - state.stationary} rows of the change"
        )
    else:
        table.add_row("estimated drop", f"{f['alarm_rows_after_change']} rows after the change: {f['alarm']}")
        table.add_row("first label of the new channel", _ahead(f))
    table.add_row(
        "labels that came meanwhile",
        f"{f['labels_sent']} (of the new channel: {f['new_channel_labels_sent']})",
    )
    if f["decision"]:
        table.add_row("training's policy", f["decision"])
    if f["other_alarms"]:
        table.add_row("other alarms", "; ".join(f["other_alarms"][:4]))
    console.print(table)
    out = settings.state_dir / "demo" / "late-labels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(f, indent=2))
    return f


def _ahead(f: dict[str, Any]) -> str:
    if f["rows_before_first_label"] is None:
        return "none will come within the run"
    return (
        f"due {f['rows_before_first_label']} rows ({f['days_before_first_label']:.0f} simulated days)"
        " after the estimated drop was raised"
    )


def _policy_answer(settings: InfraSettings, event_id: str, timeout_s: float = 30) -> str | None:
    """Training's first recorded decision on the performance drift event (ops' view); a later one
    (superseded by a newer change point, or the retrain once labels came) is not this step's story."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10, **client_args(settings, "training", "ops")) as training:
        while time.monotonic() < deadline:
            status = training.get("/retraining").json()
            decided = [d for d in status.get("decisions", []) if d.get("event_id") == event_id]
            if decided:
                return f"{decided[-1]['reason']}: {decided[-1].get('detail', '')}"
            time.sleep(1)
    return None
