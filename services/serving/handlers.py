"""Use cases: predict (by entity key or by raw features) and record a label.

The route parses and calls these; Kafka and Feast are behind small ports so tests pass fakes. The
prediction event is built off the request path (see adapters/outbox.py): the handler hands the
outbox a `PendingPrediction` holding what the event needs.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from contracts.common import Scalar
from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload, PredictionMade, PredictionMadePayload
from services.serving.domain.features import check_features, missing_features
from services.serving.domain.model import LoadedModel, ModelSlot
from services.serving.errors import DependencyUnavailable, InvalidFeatures, NoChampion, UnknownEntity
from services.serving.metrics import LABELS, PREDICTION_SECONDS, PREDICTIONS


class OnlineFeatures(Protocol):
    @property
    def ready(self) -> bool: ...

    def read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]: ...


class Outbox(Protocol):
    def offer(self, item: Any) -> bool: ...


@dataclass(frozen=True)
class Query:
    """One instance to score: an entity key, or the feature values themselves."""

    entity_id: str | None = None
    features: Mapping[str, Scalar] | None = None


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    entity_id: str | None
    score: float
    decision: str
    model: LoadedModel
    row: dict[str, Scalar]

    def response(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "score": self.score,
            "decision": self.decision,
            "model_name": self.model.name,
            "model_version": self.model.version,
        }


@dataclass
class PendingPrediction:
    """What the outbox turns into PredictionMade events: the champion's, and a shadow one if any."""

    prediction: Prediction
    latency_ms: float
    producer: str
    challenger: LoadedModel | None = None
    inputs: Mapping[str, Scalar] = field(default_factory=dict)

    def events(self) -> list[Event[Any]]:
        p = self.prediction
        events: list[Event[Any]] = [
            _made(p.model, p, p.score, p.decision, p.row, self.latency_ms, self.producer)
        ]
        shadow = self.challenger
        if shadow is not None and not missing_features(shadow.columns, self.inputs):
            started = time.perf_counter()
            row = {c.name: self.inputs[c.name] for c in shadow.columns}
            score = shadow.scorer.score([row])[0]
            latency = (time.perf_counter() - started) * 1000
            events.append(_made(shadow, p, score, shadow.decide(score), row, latency, self.producer, True))
            PREDICTIONS.labels(shadow.version, "shadow").inc()
        return events


def _made(
    model: LoadedModel,
    p: Prediction,
    score: float,
    decision: str,
    row: dict[str, Scalar],
    latency_ms: float,
    producer: str,
    shadow: bool = False,
) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=p.prediction_id,
        entity_id=p.entity_id,
        model_name=model.name,
        model_version=model.version,
        score=score,
        decision=decision,
        features=row,
        latency_ms=latency_ms,
        shadow=shadow,
    )
    return PredictionMade.create(payload, producer)


class PredictionHandler:
    def __init__(
        self,
        slot: ModelSlot,
        features: OnlineFeatures,
        outbox: Outbox,
        recent: RecentPredictions,
        producer: str,
    ) -> None:
        self.slot = slot
        self.features = features
        self.outbox = outbox
        self.recent = recent
        self.producer = producer

    def predict(self, queries: Sequence[Query], started: float) -> list[Prediction]:
        model = self.slot.champion
        if model is None:
            raise NoChampion("no champion model is loaded yet; retry once a model has been promoted")
        challenger = self.slot.challenger
        inputs = self._inputs(queries, model, challenger)
        rows = [
            check_features(model.columns, v, strict=q.entity_id is None)
            for q, v in zip(queries, inputs, strict=True)
        ]
        try:
            scores = model.scorer.score(rows)
        except ValueError as exc:  # e.g. a category the model refuses
            raise InvalidFeatures(f"the model cannot score these values: {exc}") from None
        predictions = [
            Prediction(uuid.uuid4().hex, q.entity_id, s, model.decide(s), model, row)
            for q, s, row in zip(queries, scores, rows, strict=True)
        ]
        latency_ms = (time.perf_counter() - started) * 1000
        for prediction, values in zip(predictions, inputs, strict=True):
            self.outbox.offer(PendingPrediction(prediction, latency_ms, self.producer, challenger, values))
            if prediction.entity_id is not None:
                self.recent.remember(prediction.prediction_id, prediction.entity_id)
        source = "entity" if queries[0].entity_id is not None else "features"
        PREDICTION_SECONDS.labels(source).observe(latency_ms / 1000)
        PREDICTIONS.labels(model.version, "champion").inc(len(predictions))
        return predictions

    def _inputs(
        self, queries: Sequence[Query], model: LoadedModel, challenger: LoadedModel | None
    ) -> list[Mapping[str, Scalar]]:
        """Feature values per query: as sent, or as read online (champion's inputs, plus any the
        shadow challenger needs; `check_features` keeps the champion's)."""
        entity_ids = [q.entity_id for q in queries if q.entity_id is not None]
        read = dict(zip(entity_ids, self._read(entity_ids, model, challenger), strict=True))
        unknown = [e for e, row in read.items() if row is None]
        if unknown:
            shown = ", ".join(repr(e) for e in unknown[:5])
            raise UnknownEntity(f"no features in the online store for entity {shown}")
        inputs: list[Mapping[str, Scalar]] = []
        for q in queries:
            if q.entity_id is None:
                inputs.append(q.features or {})
                continue
            row = read[q.entity_id] or {}
            gaps = missing_features(model.columns, row)
            if gaps:
                raise InvalidFeatures(
                    f"entity {q.entity_id!r} has no value for model input(s): {', '.join(gaps)}"
                )
            inputs.append(row)
        return inputs

    def _read(
        self, entity_ids: list[str], model: LoadedModel, challenger: LoadedModel | None
    ) -> list[dict[str, Scalar] | None]:
        if not entity_ids:
            return []
        if not self.features.ready:
            raise DependencyUnavailable("the feature store is not open yet; retry shortly")
        names = list(model.feature_names)
        if challenger is not None:
            names += [n for n in challenger.feature_names if n not in model.feature_names]
        try:
            return self.features.read(entity_ids, names)
        except Exception as exc:
            raise DependencyUnavailable(f"online feature read failed: {type(exc).__name__}") from exc


class RecentPredictions:
    """Bounded memory of prediction id -> entity id, so /labels can key a label by its entity."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, str] = OrderedDict()

    def remember(self, prediction_id: str, entity_id: str) -> None:
        if self.size <= 0:
            return
        self._entries[prediction_id] = entity_id
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def entity_of(self, prediction_id: str) -> str | None:
        return self._entries.get(prediction_id)


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
        """Publish (acknowledged by Kafka) the label. Keyed by the entity: the one given, the one the
        prediction was made for, else the prediction id (how PredictionMade without entity is keyed)."""
        entity = entity_id or self.recent.entity_of(prediction_id) or prediction_id
        event = LabelObserved.create(
            LabelObservedPayload(
                dataset=self.dataset,
                entity_id=entity,
                label=label,
                event_time=datetime.now(UTC),
                prediction_id=prediction_id,
            ),
            self.producer,
        )
        try:
            await self.publish(event)
        except Exception as exc:
            raise DependencyUnavailable(f"could not publish the label: {type(exc).__name__}") from exc
        LABELS.labels(label).inc()
        return event
