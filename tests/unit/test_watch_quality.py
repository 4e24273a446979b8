"""Issue 17, item 4: `mlops watch` shows each version's online quality when it changes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from infra.watch import describe_estimate, describe_quality, poll_quality

V3 = {"model": "credit", "version": "3", "labelled": 500.0, "accuracy": 0.7612, "auc": 0.8, "brier": 0.2,
      "calibration_error": 0.041}  # fmt: skip


def test_a_quality_line_names_the_version_its_measures_and_what_they_stand_on() -> None:
    line = describe_quality(V3, datetime(2026, 12, 4, 18, 30, 5))
    assert line == (
        "18:30:05 QUALITY   credit v3: accuracy 0.761, AUC 0.800, calibration error 0.041"
        " on its last 500 labelled predictions"
    )
    undefined = describe_quality(V3 | {"labelled": 1.0, "auc": None}, datetime(2026, 12, 4))
    assert "AUC -," in undefined and "last 1 labelled" in undefined


def polled(answers: list[list[dict[str, Any]] | None]) -> list[str]:
    """The lines the poller emits while the source gives `answers`, one per look, then stops."""
    lines: list[str] = []

    async def run() -> None:
        stop = asyncio.Event()

        async def source() -> list[dict[str, Any]] | None:
            if not answers:
                stop.set()
                return None
            return answers.pop(0)

        await asyncio.wait_for(poll_quality(source, lines.append, 0.01, stop), 5)

    asyncio.run(run())
    return lines


def test_the_poller_shows_a_version_when_it_changes_and_stays_quiet_otherwise() -> None:
    answers: list[list[dict[str, Any]] | None] = [
        [V3],
        [V3],  # unchanged: no line
        None,  # drift away: no line, no crash
        [V3 | {"accuracy": 0.5}, {"model": "credit", "version": "4", "labelled": 0.0}],  # v4 unlabelled
    ]
    lines = polled(answers)
    assert [line.split("QUALITY   ")[1][:30] for line in lines] == [
        "credit v3: accuracy 0.761, AUC",
        "credit v3: accuracy 0.500, AUC",
    ]


ESTIMATE = {
    "kind": "estimate", "model": "credit", "version": "3", "calibrated": True,
    "estimate": {"rows": 500, "accuracy": 0.702, "accuracy_se": 0.01, "auc": 0.79, "cost": 0.81},
    "reference": {"rows": 500, "accuracy": 0.771, "accuracy_se": 0.01, "auc": 0.8, "cost": 0.7},
    "realised": None, "drop_detected": True, "estimator_suspect": False,
}  # fmt: skip


def test_an_estimate_line_says_it_needs_no_label_and_shows_the_labels_verdict_when_they_come() -> None:
    """Issue 19: the performance estimated before labels, its uncertainty and its flags."""
    line = describe_estimate(ESTIMATE, datetime(2026, 12, 4, 18, 30, 5))
    assert line == (
        "18:30:05 ESTIMATE  credit v3: accuracy 0.702 ± 0.020 (AUC 0.790, cost 0.81 per decision)"
        " on its last 500 predictions, before labels; first window 0.771; DROP DETECTED"
    )
    realised = {"labelled": 120, "realised_accuracy": 0.41, "gap": -0.292, "z": -6.4}
    flags = {"estimator_suspect": True, "drop_detected": False, "calibrated": False}
    judged = describe_estimate(ESTIMATE | {"realised": realised, **flags}, datetime(2026, 12, 4))
    assert judged.endswith(
        "; labels: 0.410 on 120 (gap -0.292, z -6.4); ESTIMATE KEEPS MISSING THE LABELS; uncalibrated scores"
    )


def test_the_poller_shows_estimates_beside_quality_and_only_when_they_change() -> None:
    answers: list[list[dict[str, Any]] | None] = [
        [V3, ESTIMATE],
        [V3, ESTIMATE],  # unchanged: no line
        [V3, ESTIMATE | {"estimate": None}],  # no full window yet: nothing to show
        [V3, ESTIMATE | {"drop_detected": False}],
    ]
    lines = polled(answers)
    kinds = [line.split()[1] for line in lines]
    assert kinds == ["QUALITY", "ESTIMATE", "ESTIMATE"]
    assert lines[1].endswith("DROP DETECTED") and not lines[2].endswith("DROP DETECTED")
