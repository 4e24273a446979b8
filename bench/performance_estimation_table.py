"""The Markdown tables of docs/performance-estimation.md from bench/results/performance_estimation.json.

.venv/bin/python -m bench.performance_estimation_table [RESULTS.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.performance_estimation import RESULTS


def pts(value: float | None) -> str:
    """A difference of two shares in percentage points."""
    return "-" if value is None else f"{100 * value:.1f}"


def rows(value: Any, missed: int, seeds: int) -> str:
    """Median rows to alarm over the seeds (a miss counts above every delay), and the misses."""
    if value is None:
        return f"missed ({missed}/{seeds})" if missed < seeds else "missed"
    return f"{value:,.0f}" + (f" ({missed}/{seeds} missed)" if missed else "")


def error_table(r: dict[str, Any]) -> list[str]:
    nanny = r.get("nannyml", {}).get("cases", {})
    head = "| stream | true accuracy before -> after | accuracy MAE before / after (ours) | NannyML |"
    head += " AUC MAE before / after (ours) | NannyML | label noise floor before / after |"
    out = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    stationary = r["stationary"]["errors"]
    out.append(
        f"| German credit, stationary ({r['stationary']['rows']:,} rows) | {pts(stationary['real_accuracy'])}"
        f" | {pts(stationary['accuracy_mae'])} | | {pts(stationary['auc_mae'])} | |"
        f" {pts(stationary['accuracy_noise_floor'])} |"
    )
    for case, c in r["cases"].items():
        b, a, n = c["before"], c["after"], nanny.get(case)
        theirs = (
            (
                f"{pts(n['before']['accuracy_mae'])} / {pts(n['after']['accuracy_mae'])}",
                f"{pts(n['before']['auc_mae'])} / {pts(n['after']['auc_mae'])}",
            )
            if n
            else ("n/a", "n/a")
        )
        out.append(
            f"| {case} | {pts(b['real_accuracy'])} -> {pts(a['real_accuracy'])} "
            f"| {pts(b['accuracy_mae'])} / **{pts(a['accuracy_mae'])}** | {theirs[0]} "
            f"| {pts(b['auc_mae'])} / **{pts(a['auc_mae'])}** | {theirs[1]} "
            f"| {pts(b['accuracy_noise_floor'])} / {pts(a['accuracy_noise_floor'])} |"
        )
    return out


def alarm_table(r: dict[str, Any]) -> list[str]:
    delays = [str(d) for d in r["delays"]]
    head = "| stream | true accuracy change (pts) | `drop_detected` (no labels) |"
    head += "".join(f" concept monitor, delay {int(d):,} |" for d in delays)
    head += "".join(f" `estimator_suspect`, delay {int(d):,} |" for d in delays)
    out = [head, "| --- " * (3 + 2 * len(delays)) + "|"]
    for case, c in r["cases"].items():
        n = c["seeds"]
        change = c["after"]["real_accuracy"] - c["before"]["real_accuracy"]
        cells = [pts(change), rows(c["rows_to_drop_detected"], c["drop_detected_missed"], n)]
        cells += [rows(c["rows_to_concept_alarm"][d], c["missed_concept_alarm"][d], n) for d in delays]
        cells += [rows(c["rows_to_suspect"][d], c["missed_suspect"][d], n) for d in delays]
        out.append(f"| {case} | " + " | ".join(cells) + " |")
    return out


def grid_table(r: dict[str, Any]) -> list[str]:
    grid = r["stationary"]["grid"]
    cases = [c for c in r["cases"] if not c.startswith("Agrawal")]
    out = [
        "| rule | stationary: windows flagged (per 100k rows, 95 % upper) | " + " | ".join(cases) + " |",
        "| --- " * (2 + len(cases)) + "|",
    ]
    for rule, rate in grid.items():
        cells = [r["cases"][c]["grid_rows_to_alarm"][rule] for c in cases]
        out.append(
            f"| {rule} | {rate['windows']} ({rate['per_100k_rows']}, {rate['per_100k_rows_upper95']}) | "
            + " | ".join("missed" if v is None else f"{v:,.0f}" for v in cells)
            + " |"
        )
    return out


def main() -> None:
    r = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else RESULTS).read_text())
    for table in (error_table(r), alarm_table(r), grid_table(r)):
        print("\n".join(table) + "\n")
    print(json.dumps({k: r[k] for k in ("cost", "seconds", "command", "estimator_defaults")}))
    print(json.dumps({k: v for k, v in r.get("nannyml", {}).items() if k != "cases"}))


if __name__ == "__main__":
    main()
