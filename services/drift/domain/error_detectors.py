"""Detectors of the error stream (0/1 per labelled prediction), with the interface of `detectors.py`.

- `BernoulliCusum`: a CUSUM of the log-likelihood ratio "rate rose by `shift`" vs "rate at its usual
  level" (the usual level: a reference window, then a slow average); the fastest detector of an
  abrupt rise for a given false-alarm rate (about e^threshold updates between false alarms).
- `RiverDetector`: any River drift detector (ADWIN, HDDMA...) behind the same interface.
"""

from __future__ import annotations

import math
from typing import Any, Self

from services.drift.domain.detectors import Detector


class BernoulliCusum:
    """CUSUM test for a rise of a 0/1 rate (e.g. a model's errors) above its usual level.

    The usual level starts as the rate of a reference window, then follows the stream slowly (an
    exponential average over about `memory` updates, much slower than the CUSUM's reaction to an
    abrupt rise): a model that keeps improving, or the regime after an alarm, becomes the new normal.
    A slow, gradual rise is absorbed too: this detects abrupt changes. `window_size` is the number
    of updates since the CUSUM last left zero; at an alarm, it is refined to the maximum-likelihood
    change point of the rate over the last `history` updates (the last zero can be hundreds of
    updates early when the CUSUM was on an excursion as the change came, and a retrain "since the
    change" then learns from the old world too).

    >>> import random
    >>> rng = random.Random(3)
    >>> detector = BernoulliCusum(reference_size=500, shift=0.1, threshold=12.0)
    >>> stream = [float(rng.random() < 0.1) for _ in range(5000)]
    >>> stream += [float(rng.random() < 0.4) for _ in range(500)]
    >>> first = next(i for i, x in enumerate(stream) if detector.update(x).drift_detected)
    >>> first, detector.window_size  # the alarm 58 updates after the rise, which it dates to 52 ago
    (5057, 52)
    """

    name = "BernoulliCusum"

    def __init__(
        self,
        reference_size: int = 500,
        shift: float = 0.1,
        threshold: float = 12.0,
        memory: int = 2000,
        history: int = 2000,
    ) -> None:
        self.reference_size, self.shift, self.memory, self.history = reference_size, shift, memory, history
        self._recent = bytearray()  # the last updates, for the change point at an alarm
        self.threshold: float | None = threshold
        self._limit = threshold
        self.drift_detected = False
        self.statistic = 0.0
        self.window_size = 0
        self.rate = 0.0
        self._ref_n = 0
        self._ref_sum = 0.0
        self._since_calibration = 0
        self._up = self._down = 0.0

    def update(self, x: float) -> Self:
        self.drift_detected = False
        if self._ref_n < self.reference_size:
            self._ref_n += 1
            self._ref_sum += x
            if self._ref_n == self.reference_size:
                self.rate = (self._ref_sum + 0.5) / (self._ref_n + 1.0)
                self._calibrate()
            return self
        self.rate += (x - self.rate) / self.memory
        self._recent.append(1 if x else 0)
        if len(self._recent) > 2 * self.history:
            del self._recent[: -self.history]
        self._since_calibration += 1
        if self._since_calibration >= 50:
            self._calibrate()
        s = self.statistic + (self._up if x else self._down)
        if s <= 0.0:
            self.statistic, self.window_size = 0.0, 0
            return self
        self.statistic = s
        self.window_size += 1
        self.drift_detected = s > self._limit
        if self.drift_detected:
            self.window_size = rise_point(self._recent[-self.history :]) or self.window_size
        return self

    def _calibrate(self) -> None:
        p0 = min(max(self.rate, 0.5 / self.reference_size), 0.99)
        p1 = min(p0 + self.shift, 0.999)
        self._up = math.log(p1 / p0)
        self._down = math.log((1 - p1) / (1 - p0))
        self._since_calibration = 0

    def clone(self) -> Detector:
        return BernoulliCusum(self.reference_size, self.shift, self._limit, self.memory, self.history)


def rise_point(bits: bytes | bytearray) -> int:
    """Updates since the most likely single rise of a 0/1 rate in `bits` (0 when there is no rise):
    the split maximising the two segments' Bernoulli log-likelihood, the later rate being higher.

    >>> rise_point(bytes([0, 1, 0, 0] * 50 + [1, 1, 1, 0] * 5))
    20
    >>> rise_point(bytes([1, 1, 0, 0] * 20))
    0
    """
    n, total = len(bits), sum(bits)
    best, best_at, ones = _loglik(total, n) + MIN_GAIN, 0, 0
    for k in range(1, n):
        ones += bits[k - 1]
        after = total - ones
        if after * k <= ones * (n - k):
            continue  # not a rise
        value = _loglik(ones, k) + _loglik(after, n - k)
        if value > best:
            best, best_at = value, k
    return n - best_at if best_at else 0


MIN_GAIN = 3.0  # nats over "one rate throughout": a split must be clearly likelier (ratio e^3 = 20)


def _loglik(ones: int, n: int) -> float:
    if ones in (0, n):
        return 0.0
    p = ones / n
    return ones * math.log(p) + (n - ones) * math.log(1 - p)


class RiverDetector:
    """A River drift detector behind this module's interface; `statistic` is the mean seen since
    the last reset (e.g. the error rate), `window_size` the number of updates since then.

    >>> from river.drift.binary import HDDMA
    >>> detector = RiverDetector(HDDMA())
    >>> stream = [0] * 900 + [1, 1, 0, 1] * 50
    >>> alarms = [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
    >>> 900 <= alarms[0] <= 950
    True
    """

    threshold: float | None = None

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.name = type(detector).__name__
        self.drift_detected = False
        self.statistic = 0.0
        self.window_size = 0
        self._sum = 0.0

    def update(self, x: float) -> Self:
        detector = self.detector
        detector.update(x)
        self.window_size += 1
        self._sum += x
        self.statistic = self._sum / self.window_size
        self.drift_detected = detector.drift_detected
        if self.drift_detected:
            self.window_size, self._sum = 0, 0.0
        return self

    def clone(self) -> Detector:
        return RiverDetector(self.detector.clone())
