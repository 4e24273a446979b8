"""Fidelity checks reported with every explanation: an explanation failing its check says so."""

from __future__ import annotations

from collections.abc import Sequence


def shap_additivity(
    contributions: Sequence[float], base_value: float, model_output: float, tolerance: float
) -> dict[str, float | bool]:
    """SHAP's local accuracy: contributions + base value must equal the model output (log-odds).

    >>> shap_additivity([0.5, -0.25], 0.1, 0.35, 1e-6)["shap_additive"]
    True
    >>> shap_additivity([0.5, -0.25], 0.1, 0.9, 1e-6)["shap_additive"]
    False
    """
    gap = abs(sum(contributions) + base_value - model_output)
    return {"shap_additivity_error": gap, "shap_additive": gap <= tolerance}


def lime_fit(
    r2: float, local_prediction: float, model_output: float, min_r2: float
) -> dict[str, float | bool]:
    """The LIME surrogate's weighted R^2 on its neighbourhood, and how far its prediction at the
    instance is from the model's. Below `min_r2` the surrogate does not describe the model locally.

    >>> lime_fit(0.8, 0.30, 0.32, 0.3)["lime_faithful"]
    True
    """
    return {
        "lime_r2": r2,
        "lime_prediction_error": abs(local_prediction - model_output),
        "lime_faithful": r2 >= min_r2,
    }
