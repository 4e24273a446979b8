"""Local SHAP and LIME through OmniXAI 1.3.1, adapted to shap 0.51.

OmniXAI indexes `shap_values[label]` as a list per class; shap 0.51's KernelExplainer returns one
array shaped (rows, features, classes), so OmniXAI silently reads the wrong numbers (or fails).
`install_shap_fix` wraps `shap.KernelExplainer.shap_values` so a 3-D result is split into a list per
class (tests/unit/test_explain_shap_analytic.py fails without it).

SHAP is explained in log-odds of P(bad) (OmniXAI's logit link), where a logistic model is additive.
A model that `linear_shap` verifies to be logistic in column-wise transformed features (the platform's
own pipelines) gets exact values on the same background instead, in about a millisecond; Kernel SHAP
(seconds) explains everything else.
OmniXAI's LIME drops the surrogate's fit, so the underlying LIME call is wrapped to keep it.
Explainers hold per-call state: one lock per (model version, method).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from services.explain.domain.linear_shap import LinearShap, linear_shap
from services.explain.domain.model import Contribution, ExplainableModel, Scalar

EXACT_LINEAR = "exact_linear"
KERNEL = "kernel"

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

    def __init__(
        self,
        background_rows: int,
        shap_nsamples: int,
        lime_samples: int,
        seed: int,
        exact_linear: bool = True,
    ) -> None:
        self.background_rows = background_rows
        self.shap_nsamples = shap_nsamples
        self.lime_samples = lime_samples
        self.seed = seed
        self.exact_linear = exact_linear
        self._lock = threading.Lock()

    def shap(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, str]:
        """Contributions to the log-odds of P(bad), the base value (log-odds of the background), and
        which algorithm computed them (`exact_linear` or `kernel`)."""
        exact = self._linear(model) if self.exact_linear else None
        if exact is not None:
            values = exact.contributions(model.frame([instance]))
            return (
                [Contribution(n, instance[n], v) for n, v in values.items()],
                exact.base_value,
                EXACT_LINEAR,
            )
        explainer, lock = self._explainer(model, "shap")
        with lock:
            result = explainer.explain(
                model.frame([instance]), y=[1], nsamples=self.shap_nsamples, silent=True
            )
            base = float(np.atleast_1d(explainer.explainer.expected_value)[-1])
        return _contributions(result, instance), base, KERNEL

    def background(self, model: ExplainableModel) -> pd.DataFrame:
        """The rows both SHAP algorithms (and LIME) explain against: the same sample, so they agree."""
        rows = min(self.background_rows, len(model.reference))
        return model.reference[model.feature_names].sample(rows, random_state=self.seed)

    def _linear(self, model: ExplainableModel) -> LinearShap | None:
        key = f"linear_shap.{self._background_key}"
        with self._lock:  # None is cached too: a model found not linear is not inspected again
            if key not in model.cache:
                model.cache[key] = linear_shap(model.pipeline, model.feature_names, self.background(model))
            found: LinearShap | None = model.cache[key]
            return found

    @property
    def _background_key(self) -> str:
        """Cached explainers hold their background: engines with other backgrounds must not share them."""
        return f"{self.background_rows}.{self.seed}"

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
        key = f"omnixai.{method}.{self._background_key}"
        with self._lock:
            if key not in model.cache:
                model.cache[key] = (self._build(model, method), threading.Lock())
            built: tuple[Any, threading.Lock] = model.cache[key]
            return built

    def _build(self, model: ExplainableModel, method: str) -> Any:
        install_shap_fix()
        from omnixai.data.tabular import Tabular

        names = model.feature_names
        background = self.background(model)
        rows = len(background)
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
