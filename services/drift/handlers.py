"""Use cases of the drift service: feed batches of consumed events to the watch, persist, publish.

Each batch is handled under one lock (a takeover's reload shares the watch): parse once, skip what
was already handled (per-partition offsets stored with the state), update the monitors, then ONE
store transaction (state + offsets + outbox), then publish the outbox. A crash anywhere loses
nothing: before the save, Kafka redelivers the batch; after it, the outbox is flushed at start.

With `reports` given, the same transaction also keeps the batch's clean records (watched features
only, with their entity), the served predictions of the model and their joined labels (on those
records) for the Evidently reports, and each DriftDetected names its report (`report_id` = the event
id, `report_url`) and requests it; the event goes out at once, the report follows (services/drift/
reports.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.common import ContractError, KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    DriftDetectedPayload,
    LabelObserved,
    PredictionMade,
    RecordCleaned,
)
from contracts.registry import encode_event
from servicekit.consumer import RawMessage
from servicekit.decoding import decode_event
from services.drift.adapters.report_tables import Scored
from services.drift.adapters.store import DriftStore
from services.drift.domain.canary import Counts, recommend
from services.drift.domain.watch import DriftWatch, Finding, Prediction, WatchConfig
from services.drift.errors import NothingToCompare
from services.drift.estimate_alarms import EstimateAlarms, drop_event
from services.drift.metrics import ALARMS, JOIN_PENDING, ONLINE_QUALITY

log = logging.getLogger(__name__)

Reject = Callable[[RawMessage, ContractError], Awaitable[None]]


@dataclass(frozen=True)
class ReportLinks:
    """How drift events name their reports (`url` of an id) and who is told once requests are saved."""

    url: Callable[[str], str]
    wake: Callable[[], None]


class DriftService:
    def __init__(
        self,
        store: DriftStore,
        config: WatchConfig,
        *,
        publish: Callable[[bytes], Awaitable[None]],
        reject: Reject,
        dataset: str,
        model_name: str,
        producer: str = "drift",
        reports: ReportLinks | None = None,
    ) -> None:
        self.store, self.config, self.reports = store, config, reports
        self.columns = (*config.numeric, *config.categorical)
        self.publish, self.reject = publish, reject
        self.dataset, self.model_name, self.producer = dataset, model_name, producer
        self.watch: DriftWatch = store.load(config)
        self.offsets = store.offsets()
        self.published = 0
        self.unattached = 0  # predictions and labels whose record the report store no longer keeps
        self.estimate_alarms = EstimateAlarms()
        self.drop_z = config.estimator().drop_z
        self._lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()

    async def on_streams(self, raws: list[RawMessage]) -> None:
        """A batch of the three streams the watch reads, which ONE consumer fetches together (they may
        mix in a batch): parsed once, fed to the watch in the streams' own order (records, then the
        predictions made on them, then their labels), saved in one transaction."""
        await self._observe(raws, await self._parse(raws, (RecordCleaned, PredictionMade, LabelObserved)))

    async def on_records(self, raws: list[RawMessage]) -> None:
        await self._observe(raws, await self._parse(raws, (RecordCleaned,)))

    async def on_predictions(self, raws: list[RawMessage]) -> None:
        await self._observe(raws, await self._parse(raws, (PredictionMade,)))

    async def on_labels(self, raws: list[RawMessage]) -> None:
        await self._observe(raws, await self._parse(raws, (LabelObserved,)))

    async def _observe(self, raws: list[RawMessage], events: list[tuple[Any, KafkaCoordinates]]) -> None:
        cleaned = [
            (e, s) for e, s in events if isinstance(e, RecordCleaned) and e.payload.dataset == self.dataset
        ]
        records = [(e.payload.record, e.payload.event_time, source) for e, source in cleaned]
        predictions = [(_prediction(e), e.occurred_at, s) for e, s in events if isinstance(e, PredictionMade)]
        labels = [
            (e.payload.prediction_id, e.payload.entity_id, e.payload.label, e.payload.event_time, source)
            for e, source in events
            if isinstance(e, LabelObserved)
        ]
        kept = entities = None
        if self.reports is not None and records:
            kept = [(at.timestamp(), {c: record.get(c) for c in self.columns}) for record, at, _ in records]
            entities = [e.payload.entity_id for e, _ in cleaned]
        served: list[tuple[Prediction, bool | None]] = [(p, None) for p, _, _ in predictions if not p.shadow]

        def observe() -> list[Finding]:
            return [
                *self.watch.observe_records(records, self.model_name),
                *self.watch.observe_predictions(predictions),
                *self.watch.observe_labels(labels),
            ]

        await self._apply(raws, observe, kept, entities, scored=served)

    async def reload(self) -> None:
        """Start again from the state saved last: on taking over as the active instance (the last
        one saved it batch by batch), and on a standby before it answers a question about it."""
        async with self._lock:
            self.watch = await asyncio.to_thread(self.store.load, self.config)
            self.offsets = await asyncio.to_thread(self.store.offsets)

    async def flush_outbox(self) -> None:
        """Publish what a previous run saved but could not send (called at start, and per batch)."""
        async with self._flush_lock:  # never two flushes at once: an event is sent once per run
            for event_id, body in await asyncio.to_thread(self.store.outbox):
                await self.publish(body)
                await asyncio.to_thread(self.store.sent, event_id)
                self.published += 1

    async def _parse(
        self, raws: list[RawMessage], kinds: tuple[type[Any], ...]
    ) -> list[tuple[Any, KafkaCoordinates]]:
        parsed = []
        for raw in raws:
            if self._seen(raw.source):
                continue
            try:
                event = decode_event(raw.value or b"")
                if not isinstance(event, kinds):
                    expected = " or ".join(kind.__name__ for kind in kinds)
                    raise ContractError("unexpected_event_type", f"{event.event_type} is not {expected}")
            except ContractError as err:
                await self.reject(raw, err)
                continue
            parsed.append((event, raw.source))
        return parsed

    def _seen(self, source: KafkaCoordinates) -> bool:
        return source.offset < self.offsets.get((source.topic, source.partition), 0)

    async def _apply(
        self,
        raws: list[RawMessage],
        observe: Callable[[], list[Finding]],
        records: list[tuple[float, dict[str, Any]]] | None = None,
        entities: list[str] | None = None,
        scored: list[tuple[Prediction, bool | None]] | None = None,
    ) -> None:
        async with self._lock:
            findings = observe()
            scored = [*(scored or []), *self.watch.take_labelled()]
            for raw in raws:
                key = (raw.source.topic, raw.source.partition)
                self.offsets[key] = max(self.offsets.get(key, 0), raw.source.offset + 1)
            events = [self._event(f) for f in findings]
            stats = self.watch.join.stats()
            JOIN_PENDING.labels("predictions").set(stats["pending_predictions"])
            JOIN_PENDING.labels("labels").set(stats["pending_labels"])
            for (model, version), measures in self.watch.take_quality().items():
                for measure, value in measures.items():
                    if value is not None:
                        ONLINE_QUALITY.labels(model, version, measure).set(value)
            snapshots = self.watch.take_estimates()
            for model, version, flag in self.estimate_alarms.show(snapshots):
                if flag == "drop_detected":
                    drop = drop_event(model, version, snapshots[(model, version)], self.producer, self.drop_z)
                    events.append(self._with_report(drop))
            for event in events:
                ALARMS.labels(event.payload.kind, event.payload.detector).inc()
                log.warning(
                    "drift detected: %s %s by %s (statistic %.3g)",
                    event.payload.kind,
                    event.payload.feature or event.payload.model_name,
                    event.payload.detector,
                    event.payload.statistic,
                    extra={"event_id": str(event.event_id), "model_version": event.payload.model_version},
                )
            outbox = [(str(e.event_id), encode_event(e)) for e in events]
            requests = [
                (e.payload.report_id, str(e.event_id), e.payload.feature)
                for e in events
                if e.payload.report_id
            ]
            self.unattached += await asyncio.to_thread(
                self.store.save,
                self.watch,
                dict(self.offsets),
                outbox,
                records,
                requests,
                entities=entities,
                scored=self._for_reports(scored),
            )
            if requests and self.reports is not None:
                self.reports.wake()
            await self.flush_outbox()

    def _for_reports(self, scored: list[tuple[Prediction, bool | None]]) -> list[Scored]:
        """The served predictions of the reported model (and their labels) the report store keeps."""
        if self.reports is None:
            return []
        positive = self.config.positive_decision
        return [
            (p.entity_id, p.prediction_id, p.model_version, p.score, p.decision == positive, truth)
            for p, truth in scored
            if p.model_name == self.model_name
        ]

    def _event(self, finding: Finding) -> DriftDetected:
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
            model_name=finding.model_name or self.model_name,
            model_version=finding.model_version,
            first_source=alarm.window_start_source or finding.last_source,
            last_source=finding.last_source,
            arl0=alarm.arl0,
            meaning=alarm.meaning,
        )
        return self._with_report(DriftDetected.create(payload, producer=self.producer))

    def _with_report(self, event: DriftDetected) -> DriftDetected:
        """The event naming the report that will hold its evidence (when reports are on)."""
        if self.reports is None:
            return event
        payload = event.payload
        report_id = str(event.event_id)  # known now: the event goes out before its report is made
        linked = payload.model_copy(
            update={"report_id": report_id, "report_url": self.reports.url(report_id)}
        )
        return event.model_copy(update={"payload": linked})

    def detectors(self) -> dict[str, Any]:
        """For ops (GET /detectors): every monitor's state, the join's and the skip counts."""
        return {
            "monitors": {name: m.state() for name, m in sorted(self.watch.monitors.items())},
            "model_versions": dict(self.watch.versions),
            "join": self.watch.join.stats(),
            "online_quality": [
                {"model": model, "version": version, **quality.measures()}
                for (model, version), quality in self.watch.quality.items()
            ],
            "performance_estimates": [
                {"model": model, "version": version, **estimator.snapshot()}
                for (model, version), estimator in self.watch.estimators.items()
            ],
            "skipped": dict(self.watch.skipped),
            "published": self.published,
            "report_unattached": self.unattached,
        }

    def canary_recommendation(
        self, canary: str | None, champion: str | None, min_labels: int, confidence: float
    ) -> dict[str, Any]:
        """Promote, keep or roll back the canary: its accuracy against the champion's on their labelled
        predictions in the online quality windows (domain/canary.py). A recommendation only. A version
        not named is the one seen: the last canary's, and the one the champion's monitors follow."""
        canary = canary or self.watch.canaries.get(self.model_name)
        champion = champion or self.watch.versions.get(self.model_name)
        if canary is None or champion is None:
            missing = "canary" if canary is None else "champion"
            raise NothingToCompare(f"no {missing} version named, and none seen in the predictions")
        found: dict[str, Counts] = {}
        for version in (canary, champion):
            quality = self.watch.quality.get((self.model_name, version))
            found[version] = Counts(*quality.counts()) if quality else Counts(0, 0)
        advice = recommend(found[canary], found[champion], min_labels=min_labels, confidence=confidence)
        sides = {
            role: {"version": v, "labelled": found[v].labelled, "accuracy": found[v].accuracy}
            for role, v in (("canary", canary), ("champion", champion))
        }
        return {"model": self.model_name, **sides, "confidence": confidence, **advice.as_dict()}


def _prediction(event: Event[Any]) -> Prediction:
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
