"""Classification quality of the served model in a report: the labelled kept records of the current
window against those of the reference (pure; the HTML's figures come from Evidently, same definitions).

Only rows with a label count; each figure says how many rows it stands on. The verdict on an accuracy
drop is a one-sided two-proportion z-test (reference accuracy > current accuracy, p < `ALPHA`), given
only when both sides have at least `MIN_LABELLED` labelled rows: None means "cannot tell".

The reference rows were scored by the model that served at their time, which may be an older version
than the champion whose training window they come from: `model_versions` says which.

>>> ref = [{"label": 1, "predicted_class": 1, "prediction_score": 0.9}] * 40
>>> cur = [{"label": 0, "predicted_class": 1, "prediction_score": 0.9}] * 40 + [{"amount": 3.0}]
>>> s = compare(cur, ref)
>>> s["labelled_rows"], s["accuracy"], s["accuracy_drop_detected"]
({'current': 40, 'reference': 40}, {'current': 0.0, 'reference': 1.0}, True)
>>> compare(cur[-1:], ref)["accuracy_drop_detected"] is None  # no labelled row in the window
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.drift.domain.quality import auc
from services.drift.domain.report_summary import LABEL, PREDICTED, SCORE, VERSION

Row = dict[str, Any]
MIN_LABELLED = 30
ALPHA = 0.01


def labelled(rows: Sequence[Row]) -> list[Row]:
    """The rows with both a served prediction and a label."""
    return [r for r in rows if r.get(LABEL) is not None and r.get(PREDICTED) is not None]


def measures(rows: Sequence[Row]) -> Row | None:
    """Accuracy, precision, recall, ROC AUC (None with one class) and the confusion counts of
    labelled rows (1 = positive); None without rows."""
    if not rows:
        return None
    truth = np.array([bool(r[LABEL]) for r in rows])
    decided = np.array([bool(r[PREDICTED]) for r in rows])
    tp, fp = int((truth & decided).sum()), int((~truth & decided).sum())
    fn, tn = int((truth & ~decided).sum()), int((~truth & ~decided).sum())
    scores = [r.get(SCORE) for r in rows]
    roc = auc(np.array(scores, dtype=float), truth) if None not in scores else None
    return {
        "rows": len(rows),
        "accuracy": (tp + tn) / len(rows),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "roc_auc": roc,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def drop_p_value(current: Row, reference: Row) -> float:
    """One-sided p-value of "the current accuracy is lower than the reference's" (pooled z-test)."""
    n1, n2 = reference["rows"], current["rows"]
    pooled = (reference["accuracy"] * n1 + current["accuracy"] * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both all right or all wrong: no difference
    z = (reference["accuracy"] - current["accuracy"]) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def compare(current: Sequence[Row], reference: Sequence[Row]) -> Row:
    """What the report's summary says about classification quality (see the module's docstring)."""
    cur, ref = labelled(current), labelled(reference)
    now, before = measures(cur), measures(ref)
    verdict: bool | None = None
    p_value = None
    if now and before and min(now["rows"], before["rows"]) >= MIN_LABELLED:
        p_value = drop_p_value(now, before)
        verdict = p_value < ALPHA
    return {
        "labelled_rows": {"current": len(cur), "reference": len(ref)},
        "accuracy": {"current": now and now["accuracy"], "reference": before and before["accuracy"]},
        "accuracy_drop_detected": verdict,
        "classification": {
            "current": now,
            "reference": before,
            "drop_test": {"p_value": p_value, "alpha": ALPHA, "min_labelled": MIN_LABELLED},
            "model_versions": {
                "current": sorted({str(r[VERSION]) for r in cur if r.get(VERSION) is not None}),
                "reference": sorted({str(r[VERSION]) for r in ref if r.get(VERSION) is not None}),
            },
        },
    }
