"""Use cases, called by the Kafka subscribers and the HTTP routes alike."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from contracts.envelope import Event
from contracts.events import ExplanationProduced, ExplanationProducedPayload, ModelPromoted, PredictionMade
from services.explain.adapters.global_explainer import explain_globally
from services.explain.adapters.prediction_store import StoredPrediction
from services.explain.domain import counterfactual, fidelity
from services.explain.domain.features import coerce
from services.explain.domain.model import (
    METHODS,
    Contribution,
    ExplainableModel,
    LocalExplanation,
    Scalar,
    logit,
)
from services.explain.domain.summary import global_summary, local_summary
from services.explain.errors import (
    Busy,
    ExplanationTimeout,
    InvalidRequest,
    ModelVersionGone,
    UnknownModelVersion,
    UnknownPrediction,
)
from services.explain.settings import ExplainSettings

log = logging.getLogger(__name__)

Publish = Callable[[Event[Any]], Awaitable[None]]


class Models(Protocol):
    def get(self, version: str) -> ExplainableModel: ...
    def champion_version(self) -> str: ...
    def log_global(self, model: ExplainableModel, folder: Path, summary: str) -> str: ...
    def global_uri(self, version: str) -> str | None: ...


class LocalExplainer(Protocol):
    def shap(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, str]: ...  # contributions, base value, algorithm
    def lime(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, float]: ...


class Predictions(Protocol):
    def add(self, p: StoredPrediction) -> bool: ...
    def add_many(self, batch: list[StoredPrediction]) -> list[bool]: ...
    def get(self, prediction_id: str) -> StoredPrediction | None: ...


class PredictionRecorder:
    def __init__(self, store: Predictions) -> None:
        self.store = store

    async def on_prediction(self, event: PredictionMade) -> None:
        await self.on_predictions([event])

    async def on_predictions(self, events: list[PredictionMade]) -> None:
        """A batch of predictions kept for later explanation, in one transaction."""
        batch = [
            StoredPrediction(p.prediction_id, p.model_version, p.entity_id, dict(p.features), p.score)
            for p in (event.payload for event in events)
        ]
        await asyncio.to_thread(self.store.add_many, batch)


class ExplainHandler:
    """Local explanations. Computation runs in a bounded thread pool under a timeout, so the event
    loop (health, other requests, consumers) never waits for SHAP or LIME."""

    def __init__(
        self,
        settings: ExplainSettings,
        models: Models,
        engine: LocalExplainer,
        store: Predictions,
        publish: Publish,
    ) -> None:
        self.settings, self.models, self.engine, self.store, self.publish = (
            settings,
            models,
            engine,
            store,
            publish,
        )
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="explain")
        self._slots = asyncio.Semaphore(settings.max_pending)

    async def explain(
        self,
        *,
        prediction_id: str | None = None,
        features: Mapping[str, object] | None = None,
        model_version: str | None = None,
        methods: tuple[str, ...] = METHODS,
    ) -> LocalExplanation:
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise InvalidRequest(f"unknown methods {unknown}; choose from {list(METHODS)}")
        if (prediction_id is None) == (features is None):
            raise InvalidRequest("give either a prediction_id or feature values, not both or neither")
        if prediction_id is not None:
            stored = await asyncio.to_thread(self.store.get, prediction_id)
            if stored is None:
                raise UnknownPrediction(f"no prediction {prediction_id!r} is known to the explain service")
            version: str = stored.model_version
            raw: dict[str, object] = dict(stored.features)
        else:
            version = model_version or str(await asyncio.to_thread(self.models.champion_version))
            raw = dict(features or {})
        try:
            model = await asyncio.to_thread(self.models.get, version)
        except ModelVersionGone:
            if model_version is None or prediction_id is not None:
                raise
            raise UnknownModelVersion(f"model version {model_version} is not in the registry") from None
        if features is None:  # a prediction event may carry more features than this model reads
            raw = {k: v for k, v in raw.items() if k in model.feature_names}
        instance = coerce(model.columns, raw)
        explanation = await self._run(lambda: self._compute(model, instance, prediction_id, methods))
        await self.publish(self._event(explanation))
        return explanation

    async def _run(self, job: Callable[[], LocalExplanation]) -> LocalExplanation:
        if self._slots.locked():
            raise Busy(f"{self.settings.max_pending} explanations already running or queued; try again")
        async with self._slots:
            future = asyncio.get_running_loop().run_in_executor(self.pool, job)
            try:
                return await asyncio.wait_for(future, self.settings.timeout_s)
            except TimeoutError:
                raise ExplanationTimeout(
                    f"the explanation did not finish within {self.settings.timeout_s:g} s; it was abandoned "
                    "(try fewer methods, or later)"
                ) from None

    def _compute(
        self,
        model: ExplainableModel,
        instance: dict[str, Scalar],
        prediction_id: str | None,
        methods: tuple[str, ...],
    ) -> LocalExplanation:
        s = self.settings
        p_bad = float(model.p_bad(model.frame([instance]))[0])
        e = LocalExplanation(
            model.name, model.version, prediction_id, instance, p_bad, model.decide(p_bad), model.threshold
        )
        if "shap" in methods:
            started = time.perf_counter()
            e.shap, e.shap_base_value, e.shap_algorithm = self.engine.shap(model, instance)
            e.timings_ms["shap"] = (time.perf_counter() - started) * 1000
            e.fidelity |= fidelity.shap_additivity(
                [c.contribution for c in e.shap], e.shap_base_value, logit(p_bad), s.shap_tolerance
            )
        if "lime" in methods:
            started = time.perf_counter()
            e.lime, r2, local = self.engine.lime(model, instance)
            e.timings_ms["lime"] = (time.perf_counter() - started) * 1000
            e.fidelity |= fidelity.lime_fit(r2, local, p_bad, s.lime_min_r2)
        if "counterfactual" in methods:
            started = time.perf_counter()
            e.counterfactual = counterfactual.search(
                model.p_bad, model.columns, instance, model.reference, model.threshold
            )
            e.counterfactual_searched = True
            e.timings_ms["counterfactual"] = (time.perf_counter() - started) * 1000
            e.fidelity["counterfactual_found"] = e.counterfactual is not None
        e.summary = local_summary(e)
        return e

    def _event(self, e: LocalExplanation) -> ExplanationProduced:
        payload = ExplanationProducedPayload(
            scope="local",
            model_name=e.model_name,
            model_version=e.model_version,
            prediction_id=e.prediction_id,
            methods=e.methods,
            summary=e.summary,
            fidelity=e.fidelity,
            shap_algorithm=e.shap_algorithm,
        )
        return ExplanationProduced.create(payload, producer=self.settings.service_name)


class GlobalHandler:
    """On model.promoted: global explanations of the new champion, stored with its version."""

    def __init__(self, settings: ExplainSettings, models: Models, publish: Publish) -> None:
        self.settings, self.models, self.publish = settings, models, publish

    async def on_promoted(self, event: ModelPromoted) -> str | None:
        p = event.payload
        if p.model_name != self.settings.model_name:
            return None
        if (uri := await asyncio.to_thread(self.models.global_uri, p.model_version)) is not None:
            log.info("version %s already has global explanations at %s", p.model_version, uri)
            return uri
        uri, report, summary = await asyncio.to_thread(self._compute, p.model_version)
        payload = ExplanationProducedPayload(
            scope="global",
            model_name=p.model_name,
            model_version=p.model_version,
            methods=["permutation_importance", "partial_dependence"],
            artifact_uri=uri,
            summary=summary,
            fidelity={"reference_rows": float(report["reference_rows"]), "seconds": float(report["seconds"])},
        )
        await self.publish(ExplanationProduced.create(payload, producer=self.settings.service_name))
        log.info("global explanations of version %s stored at %s", p.model_version, uri)
        return uri

    def _compute(self, version: str) -> tuple[str, dict[str, Any], str]:
        s = self.settings
        model = self.models.get(version)
        with tempfile.TemporaryDirectory() as folder:
            report = explain_globally(model, Path(folder), s.global_rows, s.pdp_features, s.seed)
            importances = [(i["feature"], i["importance"]) for i in report["permutation_importance"]]
            summary = global_summary(importances, version)
            return self.models.log_global(model, Path(folder), summary), report, summary


def as_json(e: LocalExplanation) -> dict[str, Any]:
    def contributions(items: list[Contribution] | None) -> list[dict[str, Any]] | None:
        if items is None:
            return None
        ranked = sorted(items, key=lambda c: abs(c.contribution), reverse=True)
        return [{"feature": c.feature, "value": c.value, "contribution": c.contribution} for c in ranked]

    cf = e.counterfactual
    return {
        "model_name": e.model_name,
        "model_version": e.model_version,
        "prediction_id": e.prediction_id,
        "p_bad": e.p_bad,
        "decision": e.decision,
        "threshold": e.threshold,
        "summary": e.summary,
        "methods": e.methods,
        "fidelity": e.fidelity,
        "shap": None
        if e.shap is None
        else {
            "space": "log-odds of P(bad)",
            "base_value": e.shap_base_value,
            "algorithm": e.shap_algorithm,
            "contributions": contributions(e.shap),
        },
        "lime": None if e.lime is None else {"space": "P(bad)", "contributions": contributions(e.lime)},
        "counterfactual": None
        if cf is None
        else {
            "changes": {k: {"from": a, "to": b} for k, (a, b) in cf.changes.items()},
            "p_bad": cf.p_bad,
            "decision": cf.decision,
            "evaluated": cf.evaluated,
            "method": "greedy search",
        },
        "features": e.features,
        "timings_ms": e.timings_ms,
    }
