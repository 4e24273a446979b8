"""The closed loop's figures from what the run recorded (infra/loop.py): accuracy before the drift,
right after it, of the first retrain and after recovery; the delays in seconds and rows."""

from __future__ import annotations

import json
import time
from typing import Any

from infra.loop_state import LoopState, Mark


def figures(state: LoopState, drift_at: int) -> dict[str, Any]:
    """The loop's figures: accuracy before, right after and after recovery; delays in s and rows."""
    new, final, first = state.new_champion(), state.final_champion(), state.first_version
    before, n_before = state.accuracy(lambda s: not s.drifted and s.version == first)
    after, n_after = state.accuracy(lambda s: s.drifted and s.version == first)
    retrained, n_retrained = state.accuracy(lambda s: s.drifted and s.version == new)
    recovered, n_recovered = state.accuracy(lambda s: s.drifted and s.version == final)
    alarms = [m for m in state.marks if m.kind == "drift" and m.row > drift_at]
    concept = [m for m in alarms if m.text.startswith("concept")]
    alarm: Mark | None = (concept or alarms or [None])[0]  # type: ignore[list-item]
    start = state.drift_sent_at
    promoted = next((m for m in state.marks if m.kind == "promoted" and m.version == new), None)
    latencies = sorted(s.latency_ms for s in state.served)
    return {
        "drift_at_row": drift_at,
        "first_version": first,
        "new_version": new,
        "final_version": final,
        "promoted": state.promoted(),
        "accuracy_before": before, "predictions_before": n_before,
        "accuracy_right_after": after, "predictions_right_after": n_after,
        "accuracy_new_version": retrained, "predictions_new_version": n_retrained,
        "accuracy_recovered": recovered, "predictions_recovered": n_recovered,
        "alarm": alarm.text if alarm else None,
        "alarm_report": alarm.link if alarm else None,
        "alarm_rows_after_drift": alarm.row - drift_at if alarm else None,
        "alarm_s_after_drift": _since(start, alarm.at if alarm else None),
        "promoted_s_after_drift": _since(start, promoted.at if promoted else None),
        "new_champion_serving_s_after_drift": _since(start, state.new_version_served_at),
        "serving_p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "serving_p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else None,
        "records_sent": state.sent, "clean": state.clean, "rejected": state.rejected,
        "not_served": state.not_served,
        "elapsed_s": time.monotonic() - state.started_at,
    }  # fmt: skip


def _since(start: float | None, end: float | None) -> float | None:
    return round(end - start, 1) if start is not None and end is not None else None


def dump(state: LoopState, drift_at: int) -> str:
    """The run as JSON (figures, marks, per-prediction outcomes) for the plot and for later study."""
    return json.dumps(
        {
            "figures": figures(state, drift_at),
            "marks": [m.__dict__ for m in state.marks],
            "served": [[s.row, s.drifted, s.version, s.correct, s.prediction_id] for s in state.served],
        }
    )
