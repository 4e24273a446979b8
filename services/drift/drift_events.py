"""The DriftDetected events the drift service publishes, built from the watch's findings, and the
predictions the watch reads, built from PredictionMade events. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts.envelope import Event
from contracts.events import DriftDetected, DriftDetectedPayload
from services.drift.domain.watch import Finding, Prediction


def drift_event(finding: Finding, model_name: str, producer: str) -> DriftDetected:
    """The event of one finding (`model_name`: the watched model, when the finding names none)."""
    alarm = finding.alarm
    start: datetime = alarm.window_start or finding.window_end
    payload = DriftDetectedPayload(
        kind=finding.kind,
        feature=finding.feature,
        detector=alarm.detector,
        statistic=float(alarm.statistic),
        threshold=alarm.threshold,
        window_start=min(start, finding.window_end),
        window_end=finding.window_end,
        window_size=alarm.window_size,
        model_name=finding.model_name or model_name,
        model_version=finding.model_version,
        first_source=alarm.window_start_source or finding.last_source,
        last_source=finding.last_source,
        arl0=alarm.arl0,
        meaning=alarm.meaning,
    )
    return DriftDetected.create(payload, producer=producer)


def with_report(event: DriftDetected, url: Callable[[str], str] | None) -> DriftDetected:
    """The event naming the report that will hold its evidence (`url` of a report id; None: reports
    are off, the event as it is)."""
    if url is None:
        return event
    report_id = str(event.event_id)  # known now: the event goes out before its report is made
    linked = event.payload.model_copy(update={"report_id": report_id, "report_url": url(report_id)})
    return event.model_copy(update={"payload": linked})


def prediction_of(event: Event[Any]) -> Prediction:
    p = event.payload
    return Prediction(
        p.prediction_id,
        p.entity_id,
        p.model_name,
        p.model_version,
        p.score,
        p.decision,
        p.shadow,
        p.probability,
        canary=p.canary,
    )
