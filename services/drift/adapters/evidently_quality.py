"""The classification-quality section of a report, in Evidently: ClassificationQuality (accuracy,
precision, recall, F1, ROC AUC and log loss from the scores, TPR/TNR/FPR/FNR, confusion matrix) of
the labelled kept records of the window, against the labelled records of the reference when there
are any. Evidently's own tests compare each figure with the reference's (equal within 20 %).

Import only from evidently_report.py, which imports Evidently lazily.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.presets import ClassificationQuality

from services.drift.domain.report_summary import LABEL, PREDICTED, SCORE

Row = dict[str, Any]


def quality_section(current: list[Row], reference: list[Row]) -> Snapshot | None:
    """`current`, `reference`: labelled rows only (report_quality.labelled). None without current rows."""
    if not current:
        return None
    with_scores = all(r.get(SCORE) is not None for r in [*current, *reference])
    columns = [LABEL, PREDICTED, *([SCORE] if with_scores else [])]
    definition = DataDefinition(
        numerical_columns=[SCORE] if with_scores else [],
        categorical_columns=[LABEL, PREDICTED],
        classification=[
            BinaryClassification(
                target=LABEL,
                prediction_labels=PREDICTED,
                prediction_probas=SCORE if with_scores else None,
                pos_label=1,  # 1 = positive (Evidently's `labels` renaming would break pos_label)
            )
        ],
    )

    def dataset(rows: list[Row]) -> Any:
        frame = pd.DataFrame.from_records(rows, columns=columns)
        frame[LABEL] = frame[LABEL].astype(int)
        frame[PREDICTED] = frame[PREDICTED].astype(int)
        return Dataset.from_pandas(frame, data_definition=definition)

    report = Report([ClassificationQuality(conf_matrix=True)], include_tests=True)
    return report.run(current_data=dataset(current), reference_data=dataset(reference) if reference else None)
