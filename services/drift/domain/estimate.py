"""Performance estimated before the labels arrive: confidence-based performance estimation (CBPE).

In credit the truth (did the applicant repay?) comes months after the decision, so the label-based
monitors sit idle. CBPE (the method of NannyML's `CBPE`, Kivimaki et al.) reads the expected confusion
matrix off calibrated probabilities: a served prediction with P(positive) = p that was decided
positive is right with probability p, one decided negative with probability 1 - p. Summed over a
window of served predictions this gives, with no label at all:
- the expected accuracy of the decisions;
- the expected ROC AUC (expected true and false positives at every cut-off of the ranked scores);
- the expected cost per decision, with the German credit cost matrix by default: approving an
  applicant who defaults costs 5, declining one who would have repaid costs 1.

It holds while the model stays calibrated on the shifted inputs: covariate shift is fine (that is what
it estimates), a change of P(label | inputs) (concept drift) is invisible to it. So each window's
estimate is scored against the labels when they arrive (`Comparison`): under the estimator's own
assumption the realised number of correct decisions is a sum of independent Bernoulli(q_i), so
z = (correct - sum q) / sqrt(sum q(1-q)) is about standard normal; windows that keep missing by
more than `miss_z` mean the assumption broke, and `suspect` says so.

Uncertainty: an estimate carries `accuracy_se`, the standard error of the window's mean from the
covariate sample (sd of q over the window / sqrt(n)). The reference is the version's first
`reference_windows` full windows pooled; a later window's drop against it counts only when it passes
`drop_limit` AND is `drop_z` standard errors (of both) clear of zero.

Everything here is plain Python and numpy on values: the watch feeds it, the store pickles it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.drift.domain.cbpe import (
    Comparison,
    Costs,
    Estimate,
    compare,
    correct_probability,
    estimate,
    expected_auc,
    expected_cost,
    pooled,
    realised_auc,
    realised_cost,
)

__all__ = [
    "Comparison",
    "Costs",
    "Estimate",
    "PerformanceEstimator",
    "Window",
    "compare",
    "correct_probability",
    "estimate",
    "expected_auc",
    "expected_cost",
    "pooled",
    "realised_auc",
    "realised_cost",
]


@dataclass
class Window:
    """`size` consecutive served predictions of one model version, and the labels that came back."""

    seq: int
    first_at: float | None = None  # event times (unix s) of its first and last prediction
    last_at: float | None = None
    probability: list[float] = field(default_factory=list)
    positive: list[bool] = field(default_factory=list)
    closed: Estimate | None = None
    # the labelled predictions, as three columns (cheap to pickle with the watch on every batch)
    labelled_probability: list[float] = field(default_factory=list)
    labelled_positive: list[bool] = field(default_factory=list)
    labelled_truth: list[bool] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return len(self.labelled_truth)

    def comparison(self, costs: Costs) -> Comparison | None:
        if not self.labelled_truth:
            return None
        return compare(
            np.array(self.labelled_probability),
            np.array(self.labelled_positive, dtype=bool),
            np.array(self.labelled_truth, dtype=bool),
            costs,
        )


@dataclass
class PerformanceEstimator:
    """CBPE over consecutive windows of one model version's served predictions."""

    window_size: int = 500
    # Windows kept for their labels: 40 x 500 predictions, so a label may come 20,000 predictions late
    # and still meet its window (the benchmark's 10,000-row delay needs at least 22).
    windows_kept: int = 40
    min_labelled: int = 100  # labels a window needs before its estimate is judged
    miss_z: float = 3.0  # |z| past this is a miss
    misses_to_suspect: int = 2  # the last this-many judged windows all missed: the estimator is suspect
    # A drop counts past 3 accuracy points below the reference AND 3 standard errors clear of zero
    # (bench/performance_estimation.py: no false alarm in 1,400 stationary windows, drops of 3.3 and
    # 3.7 points flagged at the first window after them; 5 points missed both).
    drop_limit: float = 0.03
    drop_z: float = 3.0
    reference_windows: int = 4  # the reference: the version's first 4 full windows, pooled
    costs: Costs = field(default_factory=Costs)
    calibrated: bool = True  # False once a prediction came without a calibrated probability
    windows: deque[Window] = field(default_factory=deque)
    reference_parts: list[Estimate] = field(default_factory=list)
    reference: Estimate | None = None  # the first `reference_windows` full windows, pooled
    next_seq: int = 0
    raised: set[str] = field(default_factory=set)  # flags already raised: each rises once per version
    observed: int = 0  # predictions of this version seen

    def observe(
        self, probability: float, decided_positive: bool, calibrated: bool = True, at: float | None = None
    ) -> int:
        """Adds one served prediction (`at`: its event time); returns its window's sequence number."""
        self.observed += 1
        if not calibrated:
            self.calibrated = False
        window = self.windows[-1] if self.windows and self.windows[-1].closed is None else None
        if window is None:
            window = Window(self.next_seq)
            self.next_seq += 1
            self.windows.append(window)
            while len(self.windows) > self.windows_kept:
                self.windows.popleft()
        window.first_at = at if window.first_at is None else window.first_at
        window.last_at = at if at is not None else window.last_at
        window.probability.append(float(probability))
        window.positive.append(bool(decided_positive))
        if len(window.probability) >= self.window_size:
            window.closed = estimate(np.array(window.probability), np.array(window.positive), self.costs)
            window.probability, window.positive = [], []  # the estimate is all that is kept
            if self.reference is None:
                self.reference_parts.append(window.closed)
                if len(self.reference_parts) >= self.reference_windows:
                    self.reference = pooled(self.reference_parts)
        return window.seq

    def label(self, seq: int | None, probability: float, decided_positive: bool, truth: bool) -> bool:
        """Adds a label to its window; False when the window is no longer kept (or unknown)."""
        for window in reversed(self.windows):  # labels mostly belong to recent windows
            if window.seq == seq:
                window.labelled_probability.append(float(probability))
                window.labelled_positive.append(bool(decided_positive))
                window.labelled_truth.append(bool(truth))
                return True
        return False

    def latest(self) -> Estimate | None:
        """The last closed window's estimate (the open one is still filling)."""
        window = self.latest_window()
        return window.closed if window else None

    def latest_window(self) -> Window | None:
        closed = [w for w in self.windows if w.closed is not None]
        return closed[-1] if closed else None

    def rising(self, snapshot: dict[str, Any]) -> list[str]:
        """The flags of `snapshot` raised for the first time for this version (then latched, so an
        estimate hovering at the limit alarms once; the state is saved with the watch, so a restart
        does not alarm again)."""
        new = [
            flag
            for flag in ("drop_detected", "estimator_suspect")
            if snapshot[flag] and flag not in self.raised
        ]
        self.raised.update(new)
        return new

    def judged(self, last: int | None = None) -> list[tuple[int, Comparison]]:
        """(window, comparison) of the closed windows holding at least `min_labelled` labels, oldest
        first; only the `last` most recent of them when given (the snapshot needs a few)."""
        found: list[tuple[int, Comparison]] = []
        for window in reversed(self.windows):
            if last is not None and len(found) >= last:
                break
            if window.closed is not None and window.labelled >= self.min_labelled:
                comparison = window.comparison(self.costs)
                if comparison is not None:
                    found.append((window.seq, comparison))
        return found[::-1]

    def snapshot(self) -> dict[str, Any]:
        """What /detectors, the gauges and `mlops watch` show."""
        latest, judged = self.latest(), self.judged(last=self.misses_to_suspect)
        drop = drop_se = None
        dropped = False
        window = self.latest_window()
        after_reference = window is not None and window.seq >= self.reference_windows
        if latest is not None and self.reference is not None and after_reference:
            drop = self.reference.accuracy - latest.accuracy
            drop_se = float(np.hypot(self.reference.accuracy_se, latest.accuracy_se))
            dropped = drop > self.drop_limit and drop > self.drop_z * drop_se
        suspect = len(judged) == self.misses_to_suspect and all(abs(c.z) > self.miss_z for _, c in judged)
        last = judged[-1] if judged else None
        return {
            "calibrated": self.calibrated,
            "window_size": self.window_size,
            "reference_windows": self.reference_windows,
            "predictions": self.observed,
            "windows": len(self.windows),
            "estimate": latest.as_dict() if latest else None,
            "reference": self.reference.as_dict() if self.reference else None,
            "window_start": window.first_at if window else None,
            "window_end": window.last_at if window else None,
            "accuracy_drop": drop,
            "accuracy_drop_se": drop_se,
            "drop_detected": dropped,
            "judged_window": last[0] if last else None,
            "realised": last[1].as_dict() if last else None,
            "estimator_suspect": suspect,
        }
