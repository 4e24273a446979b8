"""A monitor wraps one detector with warm-up, debounce and cooldown, so one change raises one alarm.

- warm-up: the detector's flags are ignored for the first `warm_up` updates (and after each reset);
- debounce: an alarm needs `confirmations` flags within the last `debounce` updates (windowed
  detectors keep flagging while a shift lasts; a lone blip is not enough);
- cooldown: after an alarm the detector restarts from scratch (its reference becomes the new
  regime) and no alarm is raised for `cooldown` updates.

`mark(at, source)` is called once per consumed batch (cheap): it remembers where the stream was, so
an alarm's evidence can name the first message of its window (to batch granularity, conservatively
early, within `horizon // marks` updates) without a per-update cost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from services.drift.domain.detectors import Detector


@dataclass(frozen=True)
class Alarm:
    """What a monitor knew when it raised: the evidence of one DriftDetected."""

    detector: str
    statistic: float
    threshold: float | None
    window_size: int
    at_update: int
    window_start: Any  # whatever `mark` was given (e.g. an event time) at the window's first batch
    window_start_source: Any
    arl0: float | None = None  # updates between false alarms the threshold stands for, if calibrated
    meaning: str | None = None  # the test and its calibration, in words


class Monitor:
    """Warm-up, debounce and cooldown around a detector.

    >>> from services.drift.domain.detectors import MeanShift
    >>> monitor = Monitor(MeanShift(300, 200, 50, 5.0), warm_up=0, confirmations=2, cooldown=1000)
    >>> stream = [0.0, 1.0] * 600 + [3.0, 4.0] * 1000
    >>> alarms = [i for i, x in enumerate(stream) if monitor.update(x).drift_detected]
    >>> alarms  # one alarm for one change, although the detector flags every block after it
    [1299]
    """

    def __init__(
        self,
        detector: Detector,
        *,
        warm_up: int = 0,
        confirmations: int = 1,
        debounce: int = 1000,
        cooldown: int = 1000,
        horizon: int = 4000,
        marks: int = 128,
    ) -> None:
        self.prototype = detector.clone()
        self.detector = detector
        self.warm_up, self.confirmations, self.debounce, self.cooldown = (
            warm_up,
            confirmations,
            debounce,
            cooldown,
        )
        self.drift_detected = False
        self.n = 0
        self.alarms = 0
        self.last_alarm: Alarm | None = None
        self._reset_at = 0
        self._quiet_until = warm_up
        self._hits: deque[int] = deque()
        self._marks: deque[tuple[int, Any, Any]] = deque()
        self._horizon, self._spacing = horizon, max(1, horizon // marks)

    def update(self, x: Any) -> Self:
        self.n += 1
        self.drift_detected = self.detector.update(x).drift_detected and self._confirmed()
        return self

    def _confirmed(self) -> bool:
        n = self.n
        if n <= self._quiet_until:
            return False
        hits = self._hits
        hits.append(n)
        while hits[0] <= n - self.debounce:
            hits.popleft()
        if len(hits) < self.confirmations:
            return False
        self._raise()
        return True

    def _raise(self) -> None:
        detector = self.detector
        window = max(detector.window_size, 1)
        start, source = self._start_of(self.n - window + 1)
        meaning = getattr(detector, "meaning", None)
        self.last_alarm = Alarm(
            detector.name,
            detector.statistic,
            detector.threshold,
            window,
            self.n,
            start,
            source,
            getattr(detector, "arl0", None),
            meaning() if meaning else None,
        )
        self.alarms += 1
        self.reset()
        self._quiet_until = self.n + max(self.cooldown, self.warm_up)

    def reset(self) -> None:
        """Start the detector afresh (after an alarm, or when the model behind the stream changed)."""
        self.detector = self.prototype.clone()
        self._hits.clear()
        self._reset_at = self.n
        self._quiet_until = self.n + self.warm_up

    def mark(self, at: Any, source: Any) -> None:
        """The next update is the first of a batch that starts at `at` / `source`. Marks are kept
        `spacing` updates apart over the last `horizon` updates (a window start found through them
        is early by less than `spacing`, never late, for windows up to `horizon`)."""
        marks = self._marks
        if marks and self.n - marks[-1][0] < self._spacing:
            return
        marks.append((self.n, at, source))
        while len(marks) > 1 and marks[1][0] <= self.n - self._horizon:
            marks.popleft()

    def _start_of(self, update: int) -> tuple[Any, Any]:
        found: tuple[Any, Any] | None = None
        for n, at, source in self._marks:  # oldest first: the last mark before `update`
            if n >= update and found is not None:
                break
            found = (at, source)
        return found or (None, None)

    def state(self) -> dict[str, Any]:
        """For ops: where the monitor stands (GET /detectors)."""
        detector = self.detector
        return {
            "detector": detector.name,
            "updates": self.n,
            "updates_since_reset": self.n - self._reset_at,
            "quiet": self.n <= self._quiet_until,
            "statistic": detector.statistic,
            "threshold": detector.threshold,
            "window_size": detector.window_size,
            "arl0": getattr(detector, "arl0", None),
            "skipped": getattr(detector, "skipped", None),
            "alarms": self.alarms,
            "last_alarm_at_update": self.last_alarm.at_update if self.last_alarm else None,
        }
