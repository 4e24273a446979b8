"""Evidently behind one function: the report of a window of kept records against a reference.

One page, in this order (each section a separate Evidently run, rendered together as titled groups):
1. the feature(s) a data-drift event flagged, alone (ValueDrift), when the report answers such an event;
2. classification quality of the served model on the labelled records (evidently_quality.py);
3. prediction drift (score, class) and target drift (label) (evidently_data.py);
4. the DataDriftPreset of the watched features, as before.
Evidently's JSON is the metrics and tests of all sections together (the shape of one snapshot).

Evidently is imported on the first call only (its import takes seconds and ~100 MB), so the service
starts fast and pays nothing until a report is asked for. Call it off the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.drift.domain import report_quality
from services.drift.domain.report_summary import summarize

log = logging.getLogger(__name__)
Row = dict[str, Any]


@dataclass(frozen=True)
class EvidentlyResult:
    html: str
    json: str  # Evidently's own JSON (Snapshot.dict() of every section: metrics and tests)
    summary: dict[str, Any]  # report_summary.summarize + report_quality.compare + the flagged features
    skipped_columns: list[str]


def load_evidently() -> None:
    """Import what `drift_report` imports (for the report worker to do once, ahead of the first report)."""
    from evidently.core.metric_types import metric_tests_widget, render_widgets  # noqa: F401
    from evidently.core.report import metric_tests_stats  # noqa: F401
    from evidently.legacy.renderers.html_widgets import group_widget  # noqa: F401

    from services.drift.adapters import evidently_data, evidently_quality  # noqa: F401


def drift_report(
    current: list[Row],
    reference: list[Row],
    numeric: Sequence[str],
    categorical: Sequence[str],
    flagged: Sequence[str] = (),
) -> EvidentlyResult:
    """Raises ValueError when no watched column has values on both sides."""
    from evidently.core.metric_types import metric_tests_widget
    from evidently.core.report import metric_tests_stats

    from services.drift.adapters import evidently_data as data
    from services.drift.adapters import evidently_quality as quality

    cols = data.columns(current, reference, numeric, categorical)
    cur, ref = data.datasets(current, reference, cols)
    judged = report_quality.compare(current, reference)
    counts = judged["labelled_rows"]
    sections: list[tuple[str, Any]] = []
    flagged_run = data.flagged_section(flagged, cols, cur, ref)
    if flagged_run is not None:
        sections.append((f"Flagged by the drift event: {', '.join(flagged)}", flagged_run))
    try:
        labelled = quality.quality_section(
            report_quality.labelled(current), report_quality.labelled(reference)
        )
    except Exception as exc:  # e.g. one class only: the summary's own figures still stand
        log.warning("classification section left out: %s", exc)
        labelled, judged["classification"]["evidently_error"] = None, str(exc)
    if labelled is not None:
        title = f"Classification quality: {counts['current']} labelled rows vs {counts['reference']}"
        title += " in the reference"
        sections.append((title, labelled))
    outputs = data.outputs_section(cols, cur, ref)
    if outputs is not None:
        sections.append(("Prediction drift (score, class) and target drift (label)", outputs))
    sections.append(("Data drift of the watched features", data.data_section(cols, cur, ref)))

    snapshots = [s for _, s in sections]
    dicts = [s.dict() for s in snapshots]
    merged = {
        "metrics": [m for d in dicts for m in d["metrics"]],
        "tests": [t for d in dicts for t in d["tests"]],
    }
    tests = [t for s in snapshots for t in s.tests_results]
    groups = [_group(title, s) for title, s in sections]
    extra = [metric_tests_stats(tests), metric_tests_widget(tests)] if tests else []
    summary = {
        "flagged_feature": flagged[0] if flagged else None,
        "flagged_features": list(flagged),
        **summarize(merged, flagged),
        **judged,
    }
    return EvidentlyResult(
        html=_render(groups + extra),
        json=json.dumps(merged, default=_plain),
        summary=summary,
        skipped_columns=cols.skipped,
    )


def _group(title: str, snapshot: Any) -> Any:
    from evidently.legacy.renderers.html_widgets import group_widget

    return group_widget(title=title, widgets=snapshot.to_snapshot_model().widgets)


def _render(widgets: list[Any]) -> str:
    from evidently.core.metric_types import render_widgets

    html: str = render_widgets(widgets, as_iframe=False)
    return html


def _plain(value: Any) -> Any:
    """numpy scalars and the like in Evidently's dicts."""
    return value.item() if hasattr(value, "item") else str(value)
