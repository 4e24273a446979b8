"""The text table bench/profile_compare.py prints: one column per configuration, ratios against the
first one (the baseline measured in the same run)."""

from __future__ import annotations

from typing import Any


def _row(name: str, cells: list[str]) -> str:
    return f"{name:<34}" + "".join(f"{c:>24}" for c in cells)


def render(results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    kinds = list(dict.fromkeys(k for r in results.values() for k in r.get("summary", {})))
    lines = [_row("", labels)]
    lines.append(_row("stack up s", [str(results[c].get("up_s", "-")) for c in labels]))
    lines.append(_row("raw broker produce/s", [_rate(results[c], "produce_per_s") for c in labels]))
    lines.append(_row("  one ack at a time/s", [_rate(results[c], "serial_produce_per_s") for c in labels]))
    errors = {c: r["error"] for c, r in results.items() if "error" in r}
    for kind in kinds:
        s = [results[c].get("summary", {}).get(kind) for c in labels]
        base = next((v["records_per_s"] for v in s if v), None)

        def cells(show: Any, summaries: list[dict[str, Any] | None] = s) -> list[str]:
            return [show(v) if v else "-" for v in summaries]

        lines.append(f"-- phase {kind} (medians of n repeats)")
        lines.append(_row("n", cells(lambda v: str(v["n"]))))
        lines.append(_row("end-to-end records/s", cells(lambda v: f"{v['records_per_s']:.1f}")))
        lines.append(
            _row("  each repeat", cells(lambda v: ",".join(f"{x:.0f}" for x in v["records_per_s_all"])))
        )
        ratio = [f"{v['records_per_s'] / base:.2f}" if v and base else "-" for v in s]
        lines.append(_row(f"  ratio to {labels[0]}", ratio))
        seq_rows = cells(
            lambda v: ",".join("-" if x is None else f"{x // 1000}" for x in v["audit_events_seq_rows"])
        )
        lines.append(_row("  audit_events seq-scan krows", seq_rows))
        lines.append(_row("group lagging last", cells(lambda v: str(v["last_group"]))))
        lines.append(_row("features online p50 s", cells(lambda v: f"{v['features_online_p50_s']:.2f}")))
        lines.append(_row("CPU ms/record, total", cells(lambda v: f"{v['cpu_ms_per_record_total']:.2f}")))
        for comp in sorted({c for v in s if v for c in v["cpu_ms_per_record"]}):
            lines.append(_row(f"  {comp}", [_get(v, "cpu_ms_per_record", comp) for v in s]))
        lines.append(_row("RSS MiB total, median", cells(lambda v: f"{v['memory_total_median_mib']:.0f}")))
        lines.append(_row("RSS MiB total, peak", cells(lambda v: f"{v['memory_total_peak_mib']:.0f}")))
        for comp in sorted({c for v in s if v for c in v["memory_mib"]}):
            lines.append(_row(f"  {comp} MiB", [_get(v, "memory_mib", comp, 0) for v in s]))
    for label, error in errors.items():
        lines.append(f"{label}: FAILED: {error}")
    return "\n".join(lines)


def _rate(result: dict[str, Any], key: str) -> str:
    value = result.get("baseline", {}).get(key)
    return f"{value:.0f}" if value is not None else "-"


def _get(summary: dict[str, Any] | None, field: str, key: str, digits: int = 2) -> str:
    if not summary or key not in summary[field]:
        return "-"
    return f"{summary[field][key]:.{digits}f}"
