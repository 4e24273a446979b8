"""The record of predictions this process made, and the label use case that checks a label against it.

A label teaches the next model, so it must name a prediction serving made, for the entity it was made
for, once. The record is in memory and bounded (`recent_predictions`): a prediction older than that,
or made before a restart, can no longer be labelled (404), which is the price of refusing forged ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload
from services.serving.errors import DependencyUnavailable, LabelConflict, UnknownPrediction
from services.serving.metrics import LABELS


@dataclass
class Labelled:
    """The label recorded for a prediction, and the publication of its event (shared by repeats)."""

    label: str
    event: LabelObserved
    published: asyncio.Future[None]


@dataclass
class Made:
    """A prediction this process made: the entity it was for (None: by feature values), its label."""

    entity_id: str | None
    labelled: Labelled | None = None


class RecentPredictions:
    """Bounded memory of the predictions this process made, oldest forgotten first, so /labels only
    accepts a label for a real prediction, for its entity, once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, Made] = OrderedDict()

    def remember(self, prediction_id: str, entity_id: str | None) -> None:
        self._entries[prediction_id] = Made(entity_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, prediction_id: str) -> Made | None:
        return self._entries.get(prediction_id)

    def entity_of(self, prediction_id: str) -> str | None:
        made = self._entries.get(prediction_id)
        return made.entity_id if made is not None else None


class LabelHandler:
    def __init__(
        self,
        publish: Callable[[Event[Any]], Awaitable[None]],
        recent: RecentPredictions,
        dataset: str,
        producer: str,
    ) -> None:
        self.publish = publish
        self.recent = recent
        self.dataset = dataset
        self.producer = producer

    async def observe(
        self, prediction_id: str, label: Literal["good", "bad"], entity_id: str | None
    ) -> LabelObserved:
        """Publish (acknowledged by Kafka) the label of a prediction this service made, keyed by the
        prediction's entity (or by the prediction id when it was made from feature values).

        Unknown prediction: 404. An entity_id other than the prediction's: 409. The same label again:
        the first label's event, not published twice. A different label: 409."""
        made = self.recent.get(prediction_id)
        if made is None:
            raise UnknownPrediction(
                "no prediction with this id was made by this service (or it is older than the "
                f"{self.recent.size} most recent ones, or was made before a restart)"
            )
        if entity_id is not None and entity_id != made.entity_id:
            raise LabelConflict("entity_id is not the entity this prediction was made for")
        if made.labelled is not None:
            return await self._repeat(made.labelled, label)
        event = self._event(prediction_id, label, made.entity_id or prediction_id)
        labelled = Labelled(label, event, asyncio.ensure_future(self.publish(event)))
        made.labelled = labelled
        try:
            await asyncio.shield(labelled.published)
        except Exception as exc:
            if made.labelled is labelled:
                made.labelled = None  # not recorded: the client may retry
            raise DependencyUnavailable(f"could not publish the label: {type(exc).__name__}") from exc
        LABELS.labels(label).inc()
        return event

    async def _repeat(self, labelled: Labelled, label: str) -> LabelObserved:
        if labelled.label != label:
            raise LabelConflict(f"this prediction is already labelled {labelled.label!r}")
        try:  # a repeat while the first is still being published waits for it
            await asyncio.shield(labelled.published)
        except Exception as exc:
            raise DependencyUnavailable(f"could not publish the label: {type(exc).__name__}") from exc
        return labelled.event

    def _event(self, prediction_id: str, label: Literal["good", "bad"], entity: str) -> LabelObserved:
        payload = LabelObservedPayload(
            dataset=self.dataset,
            entity_id=entity,
            label=label,
            event_time=datetime.now(UTC),
            prediction_id=prediction_id,
        )
        return LabelObserved.create(payload, self.producer)
