"""The one use case: a fetched batch of records.clean -> one Feast push -> one FeaturesUpdated.

Order per batch (decoded once by the kit, which dead-letters what is not a RecordCleaned): turn each
record into a feature row (dead-letter, alone, what the stores cannot hold), drop ids the ledger has
seen, push, publish FeaturesUpdated, record the ids. A failure the handler did not foresee is
isolated to the record that causes it by the kit (servicekit/isolation.py). A crash before the
ledger write repeats the push and the event on redelivery (at-least-once; see adapters/ledger.py);
the event id of FeaturesUpdated is derived from the batch's record ids, so an identical re-publish
carries the same id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from contracts.common import FieldError, KafkaCoordinates
from contracts.envelope import Event
from contracts.events import FeaturesUpdated, FeaturesUpdatedPayload, RecordCleaned
from feature_repo.names import FEATURE_VIEW
from servicekit.consumer import Delivery, RawMessage
from services.features.adapters.feast_push import FeaturePusher
from services.features.adapters.ledger import PushLedger
from services.features.domain.rows import FeatureRow, feature_row, summarise
from services.features.errors import FeaturesError
from services.features.metrics import PUSH_SECONDS, RECORDS

log = logging.getLogger(__name__)

DeadLetter = Callable[[RawMessage, str, str, list[FieldError]], Awaitable[None]]
Publish = Callable[[Event[Any], str], Awaitable[None]]
BATCH_NAMESPACE = uuid.UUID("6f1c0a52-3a8e-4d57-9a43-5c8a1f0e9b21")


@dataclass
class Accepted:
    event: RecordCleaned
    source: KafkaCoordinates
    row: FeatureRow


@dataclass
class FeaturesHandler:
    pusher: FeaturePusher
    ledger: PushLedger
    publish: Publish
    dead_letter: DeadLetter
    dataset: str
    updated_topic: str
    producer: str = "features"
    last_update: FeaturesUpdated | None = field(default=None, init=False)

    async def handle(self, batch: list[Delivery[RecordCleaned]]) -> FeaturesUpdated | None:
        accepted = await self._accept(batch)
        unseen = await asyncio.to_thread(self.ledger.unseen, [str(a.event.event_id) for a in accepted])
        fresh = [a for a in accepted if str(a.event.event_id) in unseen]
        RECORDS.labels("duplicate").inc(len(accepted) - len(fresh))
        if not fresh:
            return None
        started = time.perf_counter()
        await asyncio.to_thread(self.pusher.push, [a.row for a in fresh])
        PUSH_SECONDS.observe(time.perf_counter() - started)
        event = self._updated(fresh)
        await self.publish(event, self.updated_topic)
        pairs = [(str(a.event.event_id), a.event.payload.entity_id) for a in fresh]
        await asyncio.to_thread(self.ledger.record, pairs)
        RECORDS.labels("pushed").inc(len(fresh))
        self.last_update = event
        log.info("pushed %d feature rows", len(fresh), extra={"features_event_id": str(event.event_id)})
        return event

    async def _accept(self, batch: list[Delivery[RecordCleaned]]) -> list[Accepted]:
        accepted: dict[str, Accepted] = {}  # by event id: a batch may hold the same event twice
        for delivery in batch:
            event = delivery.event
            if event.payload.dataset != self.dataset:
                RECORDS.labels("other_dataset").inc()
                continue
            try:
                row = feature_row(event.payload.entity_id, event.payload.event_time, event.payload.record)
            except FeaturesError as err:
                await self._reject(delivery.raw, err.code, err.message, err.errors)
                continue
            accepted.setdefault(str(event.event_id), Accepted(event, delivery.source, row))
        return list(accepted.values())

    async def _reject(self, raw: RawMessage, code: str, message: str, errors: list[FieldError]) -> None:
        RECORDS.labels("dead_lettered").inc()
        await self.dead_letter(raw, code, message, errors)

    def _updated(self, fresh: list[Accepted]) -> FeaturesUpdated:
        summary = summarise([a.row for a in fresh])
        payload = FeaturesUpdatedPayload(
            feature_view=FEATURE_VIEW,
            entity_ids=summary.entity_ids,
            rows=summary.rows,
            event_time_min=summary.event_time_min,
            event_time_max=summary.event_time_max,
            sources=[a.source for a in fresh],
        )
        first = fresh[0].event
        batch_id = uuid.uuid5(BATCH_NAMESPACE, ",".join(sorted(str(a.event.event_id) for a in fresh)))
        return FeaturesUpdated.model_validate(
            {
                "event_id": batch_id,
                "producer": self.producer,
                "correlation_id": first.correlation_id,
                "causation_id": str(first.event_id),
                "payload": payload,
            }
        )
