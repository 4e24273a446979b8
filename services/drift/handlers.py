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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.common import ContractError, KafkaCoordinates
from contracts.envelope import Event
from contracts.events import DriftDetected, LabelObserved, PredictionMade, RecordCleaned
from contracts.registry import encode_event
from contracts.topics import LABELS_OBSERVED, PREDICTIONS_MADE, RECORDS_CLEAN
from servicekit.arrival import implausible_time
from servicekit.consumer import RawMessage
from servicekit.decoding import decode_event
from services.drift import readouts
from services.drift.adapters.report_tables import Scored
from services.drift.adapters.store import DriftStore
from services.drift.domain.watch import DriftWatch, Finding, Prediction, WatchConfig
from services.drift.drift_events import drift_event, prediction_of, with_report
from services.drift.estimate_alarms import EstimateAlarms, drop_event
from services.drift.metrics import ALARMS, JOIN_PENDING, ONLINE_QUALITY

log = logging.getLogger(__name__)

Reject = Callable[[RawMessage, ContractError], Awaitable[None]]
STREAMS: Mapping[str, type[Event[Any]]] = {
    RECORDS_CLEAN: RecordCleaned,
    PREDICTIONS_MADE: PredictionMade,
    LABELS_OBSERVED: LabelObserved,
}
"""The streams the watch reads, by their default topics, and the type each carries."""
Snapshots = dict[tuple[str, str], dict[str, Any]]
"""The performance estimates' snapshots, by (model, version)."""


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
        streams: Mapping[str, type[Event[Any]]] | None = None,
    ) -> None:
        self.store, self.config, self.reports = store, config, reports
        # The one type each stream's topic may carry: a producer allowed to write labels must not get
        # a prediction or a clean record into the watch by putting it on the labels topic.
        self.streams = dict(streams or STREAMS)
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
        self._stale = False  # the watch in memory holds part of a batch that was not saved

    async def on_streams(self, raws: list[RawMessage]) -> None:
        """A batch of the three streams the watch reads, which ONE consumer fetches together (they may
        mix in a batch): parsed once (each record must carry its topic's type), fed to the watch in
        the streams' own order (records, then the predictions made on them, then their labels), saved
        in one transaction. A batch handled already (read again after an upgrade or a rebalance) is
        skipped without a save."""
        if all(self._seen(raw.source) for raw in raws):
            await self.flush_outbox()  # what an earlier attempt of this batch saved but did not send
            return
        await self._observe(raws, await self._parse(raws))

    async def _observe(self, raws: list[RawMessage], events: list[tuple[Any, KafkaCoordinates]]) -> None:
        cleaned = [
            (e, s) for e, s in events if isinstance(e, RecordCleaned) and e.payload.dataset == self.dataset
        ]
        records = [(e.payload.record, e.payload.event_time, source) for e, source in cleaned]
        made = [(e, s) for e, s in events if isinstance(e, PredictionMade)]
        predictions = [(prediction_of(e), e.occurred_at, source) for e, source in made]
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
            self._stale = False

    async def flush_outbox(self) -> None:
        """Publish what a previous run saved but could not send (called at start, and per batch)."""
        async with self._flush_lock:  # never two flushes at once: an event is sent once per run
            for event_id, body in await asyncio.to_thread(self.store.outbox):
                await self.publish(body)
                await asyncio.to_thread(self.store.sent, event_id)
                self.published += 1

    async def _parse(self, raws: list[RawMessage]) -> list[tuple[Any, KafkaCoordinates]]:
        """The events of the records not handled yet; each must be of the type its topic carries."""
        parsed = []
        for raw in raws:
            if self._seen(raw.source):
                continue
            try:
                event = decode_event(raw.value or b"")
                expected = self.streams.get(raw.source.topic)
                if expected is None or not isinstance(event, expected):
                    name = "nothing the watch reads" if expected is None else expected.__name__
                    raise ContractError(
                        "unexpected_event_type", f"{event.event_type} on {raw.source.topic}: expected {name}"
                    )
                if isinstance(event, LabelObserved):  # producers write labels: keep the join's clock
                    refused = implausible_time(event.payload.event_time, raw, "payload.event_time")
                    if refused is not None:
                        raise refused
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
            if self._stale:
                # The last batch failed after the watch took part of it in memory, and Kafka
                # redelivers all of it (the kit splits it to find a bad record): start again from the
                # state saved last, so that each record is observed once. A store that cannot load
                # fails this batch too, and it waits.
                self.watch = await asyncio.to_thread(self.store.load, self.config)
                self.offsets = await asyncio.to_thread(self.store.offsets)
                self._stale = False
            offsets = dict(self.offsets)
            for raw in raws:
                key = (raw.source.topic, raw.source.partition)
                offsets[key] = max(offsets.get(key, 0), raw.source.offset + 1)
            self._stale = True  # until the save below commits
            events, snapshots = await self._observe_and_save(observe, offsets, records, entities, scored)
            self.offsets, self._stale = offsets, False
            self._announce(events, snapshots)  # once, now that the batch is saved
            if any(e.payload.report_id for e in events) and self.reports is not None:
                self.reports.wake()
            await self.flush_outbox()

    async def _observe_and_save(
        self,
        observe: Callable[[], list[Finding]],
        offsets: dict[tuple[str, int], int],
        records: list[tuple[float, dict[str, Any]]] | None,
        entities: list[str] | None,
        scored: list[tuple[Prediction, bool | None]] | None,
    ) -> tuple[list[DriftDetected], Snapshots]:
        """Update the watch, then save it with `offsets`, the events and report rows in one transaction.
        Returns the events saved and the estimates' snapshots."""
        findings = observe()
        scored = [*(scored or []), *self.watch.take_labelled()]
        events = [self._event(f) for f in findings]
        snapshots = self.watch.take_estimates()
        for (model, version), snap in snapshots.items():
            if "drop_detected" in snap.get("rose", ()):
                drop = drop_event(model, version, snap, self.producer, self.drop_z)
                events.append(self._with_report(drop))
        outbox = [(str(e.event_id), encode_event(e)) for e in events]
        requests = [
            (str(e.payload.report_id), str(e.event_id), e.payload.feature)
            for e in events
            if e.payload.report_id
        ]
        self.unattached += await asyncio.to_thread(
            self.store.save,
            self.watch,
            offsets,
            outbox,
            records,
            requests,
            entities=entities,
            scored=self._for_reports(scored),
        )
        return events, snapshots

    def _announce(self, events: list[DriftDetected], snapshots: Snapshots) -> None:
        """Gauges, counters and warnings of a saved batch (a failed one is retried: it would count twice)."""
        stats = self.watch.join.stats()
        JOIN_PENDING.labels("predictions").set(stats["pending_predictions"])
        JOIN_PENDING.labels("labels").set(stats["pending_labels"])
        for (model, version), measures in self.watch.take_quality().items():
            for measure, value in measures.items():
                if value is not None:
                    ONLINE_QUALITY.labels(model, version, measure).set(value)
        self.estimate_alarms.show(snapshots)
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
        return self._with_report(drift_event(finding, self.model_name, self.producer))

    def _with_report(self, event: DriftDetected) -> DriftDetected:
        return with_report(event, None if self.reports is None else self.reports.url)

    def detectors(self) -> dict[str, Any]:
        """For ops (GET /detectors): every monitor's state, the join's and the skip counts."""
        return readouts.detectors(self.watch, published=self.published, unattached=self.unattached)

    def canary_recommendation(
        self, canary: str | None, champion: str | None, min_labels: int, confidence: float
    ) -> dict[str, Any]:
        """Promote, keep or roll back the canary (readouts.canary_recommendation)."""
        watch, model = self.watch, self.model_name
        return readouts.canary_recommendation(watch, model, canary, champion, min_labels, confidence)
