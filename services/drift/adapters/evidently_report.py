"""Evidently behind one function: a DataDriftPreset report of a window against a reference.

Evidently is imported on the first call only (its import takes seconds and ~100 MB), so the service
starts fast and pays nothing until a report is asked for. Call it off the event loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.drift.domain.report_summary import summarize, usable_columns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvidentlyResult:
    html: str
    json: str  # Evidently's own JSON (Snapshot.json(): metrics and tests)
    summary: dict[str, Any]  # report_summary.summarize + the columns left out
    skipped_columns: list[str]


def data_drift_report(
    current: list[dict[str, Any]],
    reference: list[dict[str, Any]],
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> EvidentlyResult:
    """Raises ValueError when no column has values on both sides."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    num, skipped_num = usable_columns(current, reference, numeric)
    cat, skipped_cat = usable_columns(current, reference, categorical)
    if not num and not cat:
        raise ValueError("no watched column has values in both the window and the reference")
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)

    def dataset(rows: list[dict[str, Any]]) -> Any:
        frame = pd.DataFrame.from_records(rows, columns=[*num, *cat])
        for column in num:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        for column in cat:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v)).astype(object)
        return Dataset.from_pandas(frame, data_definition=definition)

    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(current_data=dataset(current), reference_data=dataset(reference))
    text = snapshot.json()
    return EvidentlyResult(
        html=snapshot.get_html_str(as_iframe=False),
        json=text,
        summary=summarize(json.loads(text)),
        skipped_columns=[*skipped_num, *skipped_cat],
    )
