"""Use case: predict, by entity key or by raw features, guarded by the champion's training profile
(labels are in labels.py).

The route parses and calls these; Kafka and Feast are behind small ports so tests pass fakes. The
prediction event is built off the request path (see adapters/outbox.py): the handler hands the
outbox a `PendingPrediction` holding what the event needs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from contracts.common import Scalar
from contracts.envelope import Event
from contracts.events import PredictionMade, PredictionMadePayload
from services.serving.domain.features import check_features, missing_features
from services.serving.domain.model import LoadedModel, ModelSlot
from services.serving.errors import (
    DependencyUnavailable,
    InvalidFeatures,
    NoChampion,
    UnknownEntity,
)
from services.serving.labels import RecentPredictions
from services.serving.metrics import PREDICTION_SECONDS, PREDICTIONS


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
    out_of_profile: tuple[str, ...] = ()
    probability: float | None = None  # calibrated P(bad), by the model card; None when uncalibrated
    canary: bool = False  # answered by the canary version, not the champion

    def response(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "score": self.score,
            "probability": self.probability,
            "decision": self.decision,
            "model_name": self.model.name,
            "model_version": self.model.version,
            "out_of_profile": list(self.out_of_profile),
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
            _made(
                p.model, p, p.score, p.probability, p.decision, p.row, self.latency_ms, self.producer,
                canary=p.canary,
            )
        ]  # fmt: skip
        shadow = self.challenger
        if shadow is not None and not missing_features(shadow.columns, self.inputs):
            started = time.perf_counter()
            row = {c.name: self.inputs[c.name] for c in shadow.columns}
            score = shadow.scorer.score([row])[0]
            latency = (time.perf_counter() - started) * 1000
            probability = shadow.probability(score)
            decision = shadow.decide(score)
            events.append(_made(shadow, p, score, probability, decision, row, latency, self.producer, True))
            PREDICTIONS.labels(shadow.version, "shadow").inc()
        return events


def _made(
    model: LoadedModel,
    p: Prediction,
    score: float,
    probability: float | None,
    decision: str,
    row: dict[str, Scalar],
    latency_ms: float,
    producer: str,
    shadow: bool = False,
    *,
    canary: bool = False,
) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=p.prediction_id,
        entity_id=p.entity_id,
        model_name=model.name,
        model_version=model.version,
        score=score,
        probability=probability,
        decision=decision,
        features=row,
        latency_ms=latency_ms,
        shadow=shadow,
        canary=canary,
    )
    return PredictionMade.create(payload, producer)


def routing_key(query: Query) -> str:
    """What decides champion or canary: the entity id, else the features sent (so the same request,
    retried, is answered by the same model)."""
    if query.entity_id is not None:
        return query.entity_id
    return json.dumps(dict(query.features or {}), sort_keys=True, default=str)


class PredictionHandler:
    def __init__(
        self,
        slot: ModelSlot,
        features: OnlineFeatures,
        outbox: Outbox,
        recent: RecentPredictions,
        producer: str,
        out_of_profile: Literal["refuse", "flag"] = "refuse",
    ) -> None:
        self.slot = slot
        self.features = features
        self.outbox = outbox
        self.recent = recent
        self.producer = producer
        self.out_of_profile = out_of_profile

    def predict(self, queries: Sequence[Query], started: float) -> list[Prediction]:
        """Each query answered by the champion, or by the canary when one runs and the query's key
        falls in its share (domain/canary.py); the answers in the order asked."""
        champion, canary = self.slot.champion, self.slot.canary
        if champion is None:
            raise NoChampion("no champion model is loaded yet; retry once a model has been promoted")
        if canary is None:
            return self._predict(champion, queries, started, self.slot.challenger, "champion")
        model, split = canary
        to_canary = [split.to_canary(routing_key(q)) for q in queries]
        groups = [
            (model, None, "canary", [i for i, c in enumerate(to_canary) if c]),
            (champion, self.slot.challenger, "champion", [i for i, c in enumerate(to_canary) if not c]),
        ]
        answered: dict[int, Prediction] = {}
        for chosen, challenger, role, indices in groups:
            if indices:
                done = self._predict(chosen, [queries[i] for i in indices], started, challenger, role)
                answered.update(zip(indices, done, strict=True))
        return [answered[i] for i in range(len(queries))]

    def _predict(
        self,
        model: LoadedModel,
        queries: Sequence[Query],
        started: float,
        challenger: LoadedModel | None,
        role: str,
    ) -> list[Prediction]:
        inputs = self._inputs(queries, model, challenger)
        rows = [
            check_features(model.columns, v, strict=q.entity_id is None)
            for q, v in zip(queries, inputs, strict=True)
        ]
        flags = self._guard(queries, rows, model)
        try:
            scores = model.scorer.score(rows)
        except (ValueError, OverflowError) as exc:  # e.g. a category the model refuses
            raise InvalidFeatures(f"the model cannot score these values: {exc}") from None
        predictions = [
            Prediction(
                uuid.uuid4().hex,
                q.entity_id,
                s,
                model.decide(s),
                model,
                row,
                flagged,
                model.probability(s),
                canary=role == "canary",
            )
            for q, s, row, flagged in zip(queries, scores, rows, flags, strict=True)
        ]
        latency_ms = (time.perf_counter() - started) * 1000
        for prediction, values in zip(predictions, inputs, strict=True):
            self.outbox.offer(PendingPrediction(prediction, latency_ms, self.producer, challenger, values))
            self.recent.remember(prediction.prediction_id, prediction.entity_id)
        source = "entity" if queries[0].entity_id is not None else "features"
        PREDICTION_SECONDS.labels(source).observe(latency_ms / 1000)
        PREDICTIONS.labels(model.version, role).inc(len(predictions))
        return predictions

    def _guard(
        self, queries: Sequence[Query], rows: Sequence[Mapping[str, Scalar]], model: LoadedModel
    ) -> list[tuple[str, ...]]:
        """Features outside the champion's training profile, per row. Values a client sent are
        refused (policy 'refuse') or flagged; values read online are flagged: they passed ingest's
        schema, and refusing them would deny real applicants whenever the population shifts."""
        refuse = self.out_of_profile == "refuse"
        if refuse and not model.profile and any(q.entity_id is None for q in queries):
            raise InvalidFeatures(
                f"model version {model.version} carries no training profile, so feature values sent "
                "cannot be checked against it: predict by entity_id, or promote a model with a card"
            )
        flags: list[tuple[str, ...]] = []
        errors: list[dict[str, str]] = []
        for i, (query, row) in enumerate(zip(queries, rows, strict=True)):
            found = model.out_of_profile(row)
            if refuse and query.entity_id is None:
                where = f"instance {i}: " if len(queries) > 1 else ""
                errors += [
                    {"field": f"features.{name}", "code": "out_of_profile", "message": where + reason}
                    for name, reason in found.items()
                ]
            flags.append(tuple(found))
        if errors:
            raise InvalidFeatures(
                f"{len(errors)} feature value(s) outside the training profile of model version "
                f"{model.version}",
                errors,
            )
        return flags

    def _inputs(
        self, queries: Sequence[Query], model: LoadedModel, challenger: LoadedModel | None
    ) -> list[Mapping[str, Scalar]]:
        """Feature values per query: as sent, or as read online (champion's inputs, plus any the
        shadow challenger needs; `check_features` keeps the champion's)."""
        entity_ids = [q.entity_id for q in queries if q.entity_id is not None]
        read = dict(zip(entity_ids, self._read(entity_ids, model, challenger), strict=True))
        # Entity ids may be personal data: errors name the instance's position, never the id.
        unknown = [i for i, q in enumerate(queries) if q.entity_id is not None and read[q.entity_id] is None]
        if unknown:
            where = f" (instance {', '.join(map(str, unknown[:10]))})" if len(queries) > 1 else ""
            raise UnknownEntity(f"no features in the online store for the requested entity{where}")
        inputs: list[Mapping[str, Scalar]] = []
        for i, q in enumerate(queries):
            if q.entity_id is None:
                inputs.append(q.features or {})
                continue
            row = read[q.entity_id] or {}
            gaps = missing_features(model.columns, row)
            if gaps:
                missing = ", ".join(gaps)
                raise InvalidFeatures(f"instance {i}: the entity has no value for model input(s): {missing}")
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
