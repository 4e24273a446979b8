"""The drift sections of a report, in Evidently: the flagged feature(s) alone, the model's outputs
(prediction score and class, label), and the DataDriftPreset of the watched features.

All three run on the same two Datasets (every kept record of each side; a column that is empty on a
side is left out, since Evidently fails on it; outputs are null where a record has no prediction or
label yet, and Evidently's ValueDrift drops the nulls). Import only from evidently_report.py, which
imports Evidently lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset

from services.drift.domain.report_summary import LABEL, PREDICTED, SCORE, usable_columns

Row = dict[str, Any]


@dataclass(frozen=True)
class Columns:
    numeric: list[str]
    categorical: list[str]
    outputs: list[str]  # of SCORE, PREDICTED, LABEL: those with values on both sides
    skipped: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def columns(
    current: list[Row], reference: list[Row], numeric: Sequence[str], categorical: Sequence[str]
) -> Columns:
    """Raises ValueError when no watched column has values on both sides."""
    num, skipped_num = usable_columns(current, reference, numeric)
    cat, skipped_cat = usable_columns(current, reference, categorical)
    if not num and not cat:
        raise ValueError("no watched column has values in both the window and the reference")
    outputs, _ = usable_columns(current, reference, (SCORE, PREDICTED, LABEL))
    return Columns(num, cat, outputs, [*skipped_num, *skipped_cat])


def datasets(current: list[Row], reference: list[Row], cols: Columns) -> tuple[Any, Any]:
    numeric = [*cols.numeric, *[c for c in cols.outputs if c == SCORE]]
    categorical = [*cols.categorical, *[c for c in cols.outputs if c != SCORE]]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def dataset(rows: list[Row]) -> Any:
        frame = pd.DataFrame.from_records(rows, columns=[*numeric, *categorical])
        for column in numeric:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        for column in categorical:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v)).astype(object)
        return Dataset.from_pandas(frame, data_definition=definition)

    return dataset(current), dataset(reference)


def run(metrics: list[Any], current: Any, reference: Any) -> Snapshot:
    return Report(metrics, include_tests=True).run(current_data=current, reference_data=reference)


def flagged_section(flagged: Sequence[str], cols: Columns, current: Any, reference: Any) -> Snapshot | None:
    """The drift of the features a drift event flagged, alone (None if none of them can be compared)."""
    shown = [f for f in flagged if f in cols.features]
    return run([ValueDrift(column=f) for f in shown], current, reference) if shown else None


def outputs_section(cols: Columns, current: Any, reference: Any) -> Snapshot | None:
    """Prediction drift (score, class) and target drift (label), where both sides have values."""
    return run([ValueDrift(column=c) for c in cols.outputs], current, reference) if cols.outputs else None


def data_section(cols: Columns, current: Any, reference: Any) -> Snapshot:
    return run([DataDriftPreset(columns=cols.features)], current, reference)
