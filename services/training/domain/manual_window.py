"""The window of a manual training request, knowing the last concept change training acted on. Pure.

A candidate learnt on labels from both sides of a concept change learns a blend of two worlds, and the
gate then judges it on a time-split holdout from the newest one: it loses to a champion retrained since
the change (the notebook's manual retrain did: AUC 0.178 against 0.807, and nothing said why). So a
request without a window starts at the last change acted on, and says so; a window the user gives is
honoured, with a warning when it straddles that change; `ignore_change_points` asks for all history.

Times are on the label clock, as the drift retrains' windows are (see `Window` in dataset.py).

>>> from datetime import UTC, datetime
>>> change = ChangePoint(datetime(2026, 1, 2, tzinfo=UTC), "d-1")
>>> manual_window(None, None, change).start == change.at
True
>>> manual_window(datetime(2026, 1, 1, tzinfo=UTC), None, change).warning is not None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ChangePoint:
    """A concept change training acted on: a drift retrain was requested from `at`."""

    at: datetime
    drift_event_id: str


@dataclass(frozen=True)
class ManualWindow:
    start: datetime | None
    end: datetime | None
    note: str
    warning: str | None = None

    def response(self) -> dict[str, Any]:
        """What POST /train answers about the window (`warning` only when there is one)."""
        window = {"start": _iso(self.start), "end": _iso(self.end)}
        return {"window": window, "window_note": self.note} | (
            {"warning": self.warning} if self.warning else {}
        )


def manual_window(
    start: datetime | None,
    end: datetime | None,
    change: ChangePoint | None,
    ignore_change_points: bool = False,
) -> ManualWindow:
    given = start is not None or end is not None
    if change is None:
        what = "the window given" if given else "all history"
        return ManualWindow(start, end, f"no concept change acted on yet: trains on {what}")
    if not given and not ignore_change_points:
        note = (
            f"starts at the concept change of {_iso(change.at)} (drift event {change.drift_event_id}) "
            "so that the candidate learns and is judged on one world; pass window.start to override or "
            "ignore_change_points: true for all history"
        )
        return ManualWindow(change.at, None, note)
    what = "the window given" if given else "all history (ignore_change_points)"
    if straddles(start, end, change.at):
        warning = (
            "the candidate will be learnt and judged on mixed worlds (before and after the change of "
            f"{_iso(change.at)}, drift event {change.drift_event_id}): the gate compares it with a "
            "champion that may know only the newer one; leave the window out to start at the change"
        )
        return ManualWindow(start, end, f"trains on {what}", warning)
    side = "after" if start is not None and start >= change.at else "before"
    return ManualWindow(start, end, f"trains on {what}, {side} the concept change of {_iso(change.at)}")


def straddles(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    """Whether [start, end) holds labels from both sides of `at` (an open side is unbounded)."""
    return (start is None or start < at) and (end is None or end > at)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
