"""A sequential detector of a shift of one numeric feature: a two-sided CUSUM of rank normal scores.

`RankCusum` learns a reference window (the first `reference_size` finite values after a start or a
reset), then turns each value into a normal score of its rank against that reference and runs a
two-sided CUSUM on the scores:

    pos = #(reference < x), ties with the reference broken at random (a seeded `random.Random`)
    z   = Phi^-1((pos + 0.5) / (m + 1))                 m = reference_size
    up  = max(0, up + z - k);  down = max(0, down - z - k);  alarm when max(up, down) > h

Why ranks: under no change, `pos` is uniform on 0..m whatever the feature's distribution (skewed,
heavy-tailed, with ties), so one calibration of `h` holds for every feature, and no single value
moves the statistic by more than |z| <= Phi^-1(1 - 0.5/(m+1)) (3.3 for m = 1000): a huge outlier
cannot raise an alarm on its own.

Calibration (`threshold_for`): Siegmund's approximation of a one-sided Gaussian CUSUM's average run
length, ARL(h) = (e^(2kb) - 2kb - 1) / (2k^2) with b = h + 1.166, halved for two sides, and divided by
e^(2 b^2 / m): the reference's mean is estimated from m values, so the scores' mean under no change
is off by about N(0, 1/m), which shortens one side's run length by e^(2 eps b); averaged over
references, the false-alarm rate grows by E[cosh(2 eps b)] = e^(2 b^2 / m). `h` is the smallest
value whose corrected ARL0 reaches `arl0`. bench/cusum_calibration.py checks it by simulating the
whole detector (reference included) on 10k streams: docs/drift.md, "Calibration".

Values that are not finite real numbers (None, strings, booleans, NaN, +-inf, ints too large for a
float) are skipped and counted in `skipped`; they neither raise nor move the statistic.
"""

from __future__ import annotations

import math
import random
import sys
from bisect import bisect_left, bisect_right
from functools import cache
from typing import Any, Self

from scipy.special import ndtri

from services.drift.domain.detectors import Detector

_MAX = sys.float_info.max


def siegmund_arl(h: float, k: float) -> float:
    """One-sided ARL0 of a CUSUM on N(0, 1) values with allowance k and threshold h (Siegmund)."""
    a = 2 * k * (h + 1.166)
    return (math.exp(a) - a - 1) / (2 * k * k)


def arl0_of(h: float, k: float, m: int) -> float:
    """Two-sided ARL0 of `RankCusum(m, k)` at threshold h, reference estimation included."""
    b = h + 1.166
    return siegmund_arl(h, k) / 2 / math.exp(2 * b * b / m)


@cache
def threshold_for(arl0: float, k: float, m: int) -> float:
    """The smallest h (to 0.01) whose two-sided ARL0, reference estimation included, is >= arl0.

    >>> threshold_for(2_000_000, 0.35, 1000), threshold_for(700_000, 0.35, 1000)
    (19.8, 18.11)
    """
    low, high = 0.0, k * m / 2 - 1.166  # past it, the reference's error outgrows h's effect
    if arl0_of(high, k, m) < arl0:
        raise ValueError(f"no threshold reaches ARL0 {arl0:g} with k={k}, m={m}: enlarge the reference")
    while high - low > 0.005:
        mid = (low + high) / 2
        low, high = (mid, high) if arl0_of(mid, k, m) < arl0 else (low, mid)
    return math.ceil(high * 100) / 100


@cache
def normal_scores(m: int) -> tuple[float, ...]:
    """z for each rank position 0..m against a reference of m values."""
    return tuple(float(ndtri((pos + 0.5) / (m + 1))) for pos in range(m + 1))


class RankCusum:
    """Two-sided CUSUM of rank normal scores against a reference window (one numeric feature).

    >>> import random
    >>> rng = random.Random(4)
    >>> detector = RankCusum(reference_size=1000, shift=0.35, arl0=2_000_000, seed=1)
    >>> stream = [rng.lognormvariate(8, 0.7) for _ in range(3000)]  # skewed, like credit amounts
    >>> stream += [x + 2100 for x in (rng.lognormvariate(8, 0.7) for _ in range(500))]  # + 0.7 sd
    >>> first = next(i for i, x in enumerate(stream) if detector.update(x).drift_detected)
    >>> first - 3000, detector.threshold  # rows from the shift to the alarm; h for ARL0 = 2M
    (55, 19.8)
    """

    name = "RankCusum"

    def __init__(
        self, reference_size: int = 1000, shift: float = 0.35, arl0: float = 2_000_000, seed: int = 0
    ) -> None:
        self.reference_size, self.shift, self.arl0, self.seed = reference_size, shift, arl0, seed
        self.threshold: float | None = threshold_for(arl0, shift, reference_size)
        self._limit = self.threshold
        self.drift_detected = False
        self.statistic = 0.0
        self.window_size = 0  # updates since the side that leads last left zero (change-point estimate)
        self.skipped = 0
        self._reference: list[float] = []
        self._scores = normal_scores(reference_size)  # not pickled: rebuilt from reference_size
        self._ready = False
        self._up = self._down = 0.0
        self._up_n = self._down_n = 0
        self._rng = random.Random(seed)
        self._random = self._rng.random

    def update(self, x: Any) -> Self:
        self.drift_detected = False
        kind = x.__class__
        if (kind is float or kind is int) and -_MAX <= x <= _MAX:  # false for nan, +-inf, huge ints
            value = x
        else:
            value = _finite(x)  # subclasses of int and float (numpy's float64): the slow path
            if value is None:
                self.skipped += 1
                return self
        if not self._ready:
            self._learn(value)
            return self
        ref = self._reference
        pos = bisect_left(ref, value)
        if pos < self.reference_size and ref[pos] == value:  # tied with the reference: a random place
            ties = bisect_right(ref, value, pos) - pos
            pos += int(self._random() * (ties + 1))
        z = self._scores[pos]
        up = self._up + z - self.shift
        down = self._down - z - self.shift
        if up > 0.0:
            self._up_n += 1
        else:
            up, self._up_n = 0.0, 0
        if down > 0.0:
            self._down_n += 1
        else:
            down, self._down_n = 0.0, 0
        self._up, self._down = up, down
        if up >= down:
            self.statistic, self.window_size = up, self._up_n
        else:
            self.statistic, self.window_size = down, self._down_n
        self.drift_detected = up > self._limit or down > self._limit
        return self

    def _learn(self, value: float) -> None:
        self._reference.append(value)
        if len(self._reference) == self.reference_size:
            self._reference.sort()
            self._ready = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_scores"], state["_random"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scores = normal_scores(self.reference_size)
        self._random = self._rng.random

    def meaning(self) -> str:
        """What an alarm of this detector stands for, for the event's evidence."""
        return (
            f"two-sided CUSUM of rank normal scores against {self.reference_size} reference values, "
            f"allowance k={self.shift} sd; threshold h={self._limit} stands for one false alarm per "
            f"{self.arl0:,.0f} updates without change (ARL0)"
        )

    def clone(self) -> Detector:
        return RankCusum(self.reference_size, self.shift, self.arl0, self.seed + 1)


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        value = float(x)
    except OverflowError:
        return None
    return None if value - value else value  # inf - inf and nan - nan are nan (true); else 0.0
