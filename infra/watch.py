"""`mlops watch`: drift and model events as they happen, one line each, for ops at a terminal, and
each model version's online quality (accuracy, AUC, calibration from the label join) when it changes.

It joins the bus like any ops consumer would (a fresh group starting at the end of each topic), so
it sees what happens from now on and never disturbs the services' own groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic_settings import SettingsConfigDict

from contracts.envelope import Event
from contracts.events import (
    BatchScored,
    CanaryChanged,
    DriftDetected,
    ModelPromoted,
    ModelRejected,
    ModelTrained,
    TrainingRequested,
)
from contracts.registry import ContractError, parse_event
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from servicekit.settings import ServiceSettings

WATCHED: tuple[type[Event], ...] = (
    DriftDetected,
    TrainingRequested,
    ModelTrained,
    ModelPromoted,
    ModelRejected,
    CanaryChanged,
    BatchScored,
)


class WatchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WATCH_", extra="ignore")
    service_name: ClassVar[str] = "watch"


def describe(event: Event) -> str:
    """One line a person can read at a glance."""
    p = event.payload
    when = event.occurred_at.strftime("%H:%M:%S")
    if isinstance(event, DriftDetected) and p.kind == "performance":
        return f"{when} DRIFT     performance of model v{p.model_version}: {p.meaning or p.detector}"
    if isinstance(event, DriftDetected):
        what = f"{p.kind} drift" + (f" in {p.feature}" if p.feature else "")
        evidence = f"{p.detector} statistic {p.statistic:.3g} over {p.window_size}"
        return f"{when} DRIFT     {what}: {evidence} (model v{p.model_version})"
    if isinstance(event, TrainingRequested):
        return f"{when} TRAIN     requested for {p.model_name} ({p.reason}, by {p.requested_by})"
    if isinstance(event, ModelTrained):
        return f"{when} TRAINED   {p.model_name} v{p.model_version}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(p.metrics.items()) if k in ("auc", "log_loss")
        )
    if isinstance(event, ModelPromoted) and p.kind == "rollback":
        return (
            f"{when} ROLLBACK  {p.model_name} v{p.model_version} (was {p.previous_version or 'none'}, "
            f"by {p.requested_by or '?'}): {p.reason or ''}"
        )
    if isinstance(event, ModelPromoted):
        return f"{when} PROMOTED  {p.model_name} v{p.model_version} (was {p.previous_version or 'none'})"
    if isinstance(event, CanaryChanged):
        share = f" on {p.share:.0%} of traffic" if p.share is not None else ""
        return (
            f"{when} CANARY    {p.model_name} v{p.model_version} {p.action}{share} "
            f"(champion v{p.champion_version or '?'}, by {p.requested_by}): {p.reason}"
        )
    if isinstance(event, ModelRejected):
        return f"{when} REJECTED  {p.model_name} v{p.model_version}: " + "; ".join(p.reasons)
    if isinstance(event, BatchScored):
        source = "file"
        if p.start is not None and p.end is not None:
            source = f"offline store {p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M}"
        return (
            f"{when} SCORED    {p.model_name} v{p.model_version}: {p.rows} rows from {source} "
            f"(sha256 {p.input_sha256[:12]}) in {p.duration_s:.1f} s"
        )
    return f"{when} {event.event_type}"


# Each version's online quality (the drift service's GET /detectors), or None when it is not reachable.
QualitySource = Callable[[], Awaitable[list[dict[str, Any]] | None]]


def describe_quality(quality: dict[str, Any], at: datetime) -> str:
    """A version's online quality in one line; a measure still undefined is a dash."""

    def number(key: str) -> str:
        value = quality.get(key)
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    measures = ", ".join(
        f"{name} {number(key)}"
        for name, key in (
            ("accuracy", "accuracy"),
            ("AUC", "auc"),
            ("calibration error", "calibration_error"),
        )
    )
    labelled = int(quality.get("labelled") or 0)
    return (
        f"{at.strftime('%H:%M:%S')} QUALITY   {quality['model']} v{quality['version']}: {measures}"
        f" on its last {labelled} labelled predictions"
    )


def describe_estimate(snap: dict[str, Any], at: datetime) -> str:
    """A version's performance estimated before labels (CBPE), and how the labels judged it, in one line."""
    estimate, reference = snap.get("estimate") or {}, snap.get("reference") or {}
    realised = snap.get("realised")
    auc = estimate.get("auc")
    line = (
        f"{at.strftime('%H:%M:%S')} ESTIMATE  {snap['model']} v{snap['version']}: accuracy"
        f" {estimate['accuracy']:.3f} ± {1.96 * estimate['accuracy_se']:.3f}"
        f" (AUC {'-' if auc is None else f'{auc:.3f}'}, cost {estimate['cost']:.2f} per decision)"
        f" on its last {estimate['rows']} predictions, before labels;"
        f" first window {reference['accuracy']:.3f}"
    )
    if realised:
        line += (
            f"; labels: {realised['realised_accuracy']:.3f} on {realised['labelled']}"
            f" (gap {realised['gap']:+.3f}, z {realised['z']:+.1f})"
        )
    flags = [
        text
        for text, raised in (
            ("DROP DETECTED", snap.get("drop_detected")),
            ("ESTIMATE KEEPS MISSING THE LABELS", snap.get("estimator_suspect")),
            ("uncalibrated scores", not snap.get("calibrated", True)),
        )
        if raised
    ]
    return line + "".join(f"; {flag}" for flag in flags)


def _estimate_seen(snap: dict[str, Any]) -> tuple[Any, ...]:
    estimate, realised = snap.get("estimate") or {}, snap.get("realised") or {}
    return (
        estimate.get("accuracy"),
        realised.get("labelled"),
        snap.get("drop_detected"),
        snap.get("estimator_suspect"),
    )


async def poll_quality(
    source: QualitySource, emit: Callable[[str], None], every_s: float, stop: asyncio.Event
) -> None:
    """A QUALITY line per version whenever its measures changed since the last look, and an ESTIMATE
    line (items with `"kind": "estimate"`: the performance estimated before labels) likewise."""
    shown: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    while not stop.is_set():
        for item in await source() or []:
            kind = item.get("kind", "quality")
            key = (kind, item["model"], item["version"])
            now = datetime.now(UTC).astimezone()
            if kind == "estimate":
                seen = _estimate_seen(item)
                if item.get("estimate") and item.get("reference") and shown.get(key) != seen:
                    emit(describe_estimate(item, now))
                    shown[key] = seen
                continue
            seen = tuple(item.get(k) for k in ("labelled", "accuracy", "auc", "calibration_error"))
            if item.get("labelled") and shown.get(key) != seen:
                emit(describe_quality(item, now))
                shown[key] = seen
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def watch(
    bootstrap: str,
    emit: Callable[[str], None],
    max_events: int | None,
    timeout_s: float | None,
    quality: QualitySource | None = None,
    quality_every_s: float = 30.0,
) -> int:
    """Print watched events until `max_events` were seen or `timeout_s` passed; returns the count.
    With `quality`, each version's online quality is shown too (not counted as an event)."""
    broker = make_broker(WatchSettings(kafka_bootstrap_servers=bootstrap))
    subs = Subscriptions(broker, EventPublisher(broker, "watch"), "watch")
    seen = 0
    done = asyncio.Event()
    group = f"mlops-watch-{uuid.uuid4().hex[:8]}"

    async def show(raws: list[RawMessage]) -> None:
        nonlocal seen
        for raw in raws:
            try:
                event = parse_event(raw.value or b"")
            except ContractError as err:
                emit(f"(unreadable message on {raw.source.topic}: {err.code})")
                continue
            emit(describe(event))
            seen += 1
            if max_events is not None and seen >= max_events:
                done.set()

    for topic in dict.fromkeys(t.topic for t in WATCHED):
        # A group per topic: consumers of different topics in ONE group rebalance each other as they
        # join, and a partition reassigned after the banner re-resolves "latest" past what came meanwhile
        # (a ModelPromoted published right after the banner was missed, 1 run in many).
        subs.on_raw(topic, group_id=f"{group}.{topic}", start="latest")(show)
    async with broker:
        await broker.start()
        await subs.ready_for_new_messages()
        emit(f"watching {', '.join(dict.fromkeys(t.topic for t in WATCHED))} (Ctrl-C to stop)")
        poller = asyncio.create_task(poll_quality(quality, emit, quality_every_s, done)) if quality else None
        with contextlib.suppress(TimeoutError):  # the timeout is a normal end
            await asyncio.wait_for(done.wait(), timeout_s)
        done.set()
        if poller is not None:
            await poller
    return seen
