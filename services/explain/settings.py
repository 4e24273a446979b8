"""Settings of the explain service (env prefix `EXPLAIN_`; platform-wide values unprefixed)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.topics import EXPLANATION_PRODUCED, MODEL_PROMOTED, PREDICTIONS_MADE
from servicekit.settings import ServiceSettings


class ExplainSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXPLAIN_", extra="ignore", populate_by_name=True)
    default_fetch_wait_ms: ClassVar[int] = 250  # off a record's way to the online store
    service_name: ClassVar[str] = "explain"

    champion_alias: str = Field(
        "champion", min_length=1, description="Alias used for raw-value requests that name no model version."
    )
    model_cache_size: int = Field(4, ge=1, le=64, description="Model versions kept loaded (LRU).")
    workers: int = Field(2, ge=1, le=32, description="Threads computing explanations.")
    max_pending: int = Field(
        16, ge=1, description="Explanations running or queued at once; more get 503 (try again)."
    )
    timeout_s: float = Field(10.0, gt=0, description="Seconds before a local explanation request gets 504.")
    background_rows: int = Field(
        50, ge=5, le=1000, description="Reference rows used as SHAP/LIME background."
    )
    shap_nsamples: int = Field(500, ge=20, description="Model evaluations per Kernel SHAP explanation.")
    exact_linear_shap: bool = Field(
        True,
        description="Exact SHAP values for a model verified to be logistic on column-wise transformed "
        "features (milliseconds); off, or for any other model, Kernel SHAP (seconds).",
    )
    lime_samples: int = Field(1000, ge=50, description="Perturbed samples per LIME explanation.")
    shap_tolerance: float = Field(
        1e-3, gt=0, description="Largest |sum(contributions) + base - model log-odds| accepted as additive."
    )
    lime_min_r2: float = Field(
        0.3, ge=0, le=1, description="Smallest LIME surrogate R^2 presented as faithful."
    )
    global_rows: int = Field(300, ge=20, description="Reference rows used for global explanations.")
    pdp_features: int = Field(3, ge=0, le=10, description="Top features that get a partial-dependence plot.")
    seed: int = Field(0, description="Seed of every sampling step (background, LIME, permutations).")
    max_predictions: int = Field(
        200_000, ge=10, description="Predictions remembered in the local store (oldest dropped beyond)."
    )
    predictions_topic: str = Field(PREDICTIONS_MADE, description="Topic PredictionMade events come from.")
    promotions_topic: str = Field(MODEL_PROMOTED, description="Topic ModelPromoted events come from.")
    explanations_topic: str = Field(EXPLANATION_PRODUCED, description="Topic ExplanationProduced goes to.")
    trust_registry_models: bool = Field(
        True,
        description="Allow deserializing models from the registry (MLFLOW_ALLOW_PICKLE_DESERIALIZATION); "
        "only point the service at a registry whose writers you trust.",
    )
