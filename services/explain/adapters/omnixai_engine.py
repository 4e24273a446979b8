"""Local SHAP and LIME through OmniXAI 1.3.1, adapted to shap 0.51.

OmniXAI indexes `shap_values[label]` as a list per class; shap 0.51's KernelExplainer returns one
array shaped (rows, features, classes), so OmniXAI silently reads the wrong numbers (or fails).
`install_shap_fix` wraps `shap.KernelExplainer.shap_values` so a 3-D result is split into a list per
class (tests/unit/test_explain_shap_analytic.py fails without it).

SHAP is explained in log-odds of P(bad) (OmniXAI's logit link), where a logistic model is additive.
OmniXAI's LIME drops the surrogate's fit, so the underlying LIME call is wrapped to keep it.
Explainers hold per-call state: one lock per (model version, method).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from services.explain.domain.model import Contribution, ExplainableModel, Scalar

_FIX_LOCK = threading.Lock()


def install_shap_fix() -> None:
    """Idempotent."""
    import shap

    with _FIX_LOCK:
        original = shap.KernelExplainer.shap_values
        if getattr(original, "_per_class_list", False):
            return

        def shap_values(self: Any, X: Any, **kwargs: Any) -> Any:
            values = original(self, X, **kwargs)
            if isinstance(values, np.ndarray) and values.ndim == 3:
                return [values[:, :, k] for k in range(values.shape[2])]
            return values

        shap_values._per_class_list = True  # type: ignore[attr-defined]
        shap.KernelExplainer.shap_values = shap_values


class OmniXaiEngine:
    """Implements the handlers' `LocalExplainer` port. Blocking: run in a worker thread."""

    def __init__(self, background_rows: int, shap_nsamples: int, lime_samples: int, seed: int) -> None:
        self.background_rows = background_rows
        self.shap_nsamples = shap_nsamples
        self.lime_samples = lime_samples
        self.seed = seed
        self._lock = threading.Lock()

    def shap(self, model: ExplainableModel, instance: dict[str, Scalar]) -> tuple[list[Contribution], float]:
        """Contributions to the log-odds of P(bad), and the base value (mean log-odds of the background)."""
        explainer, lock = self._explainer(model, "shap")
        with lock:
            result = explainer.explain(
                model.frame([instance]), y=[1], nsamples=self.shap_nsamples, silent=True
            )
            base = float(np.atleast_1d(explainer.explainer.expected_value)[-1])
        return _contributions(result, instance), base

    def lime(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, float]:
        """Contributions of the LIME surrogate, its weighted R^2, and its prediction at the instance."""
        explainer, lock = self._explainer(model, "lime")
        with lock:
            result = explainer.explain(
                model.frame([instance]), y=[1], num_features=len(model.columns), num_samples=self.lime_samples
            )
            fitted = explainer.last_fit
        return _contributions(result, instance), float(fitted.score), float(np.ravel(fitted.local_pred)[0])

    def _explainer(self, model: ExplainableModel, method: str) -> tuple[Any, threading.Lock]:
        key = f"omnixai.{method}"
        with self._lock:
            if key not in model.cache:
                model.cache[key] = (self._build(model, method), threading.Lock())
            built: tuple[Any, threading.Lock] = model.cache[key]
            return built

    def _build(self, model: ExplainableModel, method: str) -> Any:
        install_shap_fix()
        from omnixai.data.tabular import Tabular

        names = model.feature_names
        rows = min(self.background_rows, len(model.reference))
        background = model.reference[names].sample(rows, random_state=self.seed)
        data = Tabular(background, categorical_columns=model.categorical)

        def predict(tabular: Any) -> np.ndarray:
            return np.asarray(model.pipeline.predict_proba(tabular.to_pd(copy=False)[names]))

        if method == "shap":
            from omnixai.explainers.tabular.agnostic.shap import ShapTabular

            return ShapTabular(data, predict, nsamples=rows, seed=self.seed)
        from omnixai.explainers.tabular.agnostic.lime import LimeTabular

        explainer = LimeTabular(data, predict, random_state=self.seed)
        inner = explainer.explainer.explain_instance

        def explain_instance(*args: Any, **kwargs: Any) -> Any:
            fitted = inner(*args, **kwargs)
            explainer.last_fit = fitted
            return fitted

        explainer.explainer.explain_instance = explain_instance  # keep the fit
        return explainer


def _contributions(result: Any, instance: dict[str, Scalar]) -> list[Contribution]:
    found = result.get_explanations()[0]
    return [
        Contribution(str(name), instance[str(name)], float(score))
        for name, score in zip(found["features"], found["scores"], strict=True)
    ]
