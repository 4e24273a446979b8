"""MLflow: the run (params, metrics, lineage tags), the registered model version and the champion alias.

The model contract the serving service relies on (see docs/features-and-training.md): the sklearn
pipeline logged with `pyfunc_predict_fn="predict_proba"` (column 1 = P(bad)), a signature inferred
from the input columns, and version tags positive_class, decision_threshold, features, run_id,
dataset_sha256. The champion is `models:/<model_name>@champion`.

Rejected candidates stay as runs (model, metrics, gate evidence, tag `gate=rejected`) but leave the
registry once the gate has spoken: their version is deleted, so the registered model lists only
versions that passed, and the run keeps the number it had (tag `registered_version`). Set
`TRAINING_KEEP_REJECTED_VERSIONS=true` to keep them registered (tagged `gate=rejected`).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from contracts.events import GateEvidence
from contracts.model import Calibration
from servicekit.mlflow_store import open_mlflow
from services.training.adapters.mlflow_logging import (
    POSITIVE_CLASS,
    log_dataset_input,
    log_reliability_figure,
    log_training_set,
    model_card,
)
from services.training.domain.describe import run_name, version_description
from services.training.domain.model import ScoreFn

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    features: list[str]
    score: ScoreFn


@dataclass
class Candidate:
    pipeline: Pipeline
    inputs: list[str]
    example: pd.DataFrame  # a few training rows, input columns only
    decision_threshold: float
    dataset_sha256: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # JSON documents logged with the run
    training_set: pd.DataFrame | None = None  # the exact rows (train + holdout), logged as Parquet
    calibration: Calibration | None = None  # the card's score -> probability map, if one was fitted


class ModelRegistry(Protocol):
    """Port: where candidates are recorded and the champion alias lives (blocking calls)."""

    def champion(self) -> Champion | None: ...
    def log_candidate(self, candidate: Candidate) -> tuple[str, str]: ...
    def record_gate(
        self, run_id: str, version: str, evidence: GateEvidence, metrics: dict[str, float]
    ) -> None: ...
    def promote(self, version: str) -> None: ...
    def version_of(self, alias: str) -> str | None: ...
    def version_exists(self, version: str) -> bool: ...
    def set_alias(self, alias: str, version: str) -> None: ...
    def delete_alias(self, alias: str) -> None: ...
    def model_tag(self, key: str) -> str | None: ...
    def set_model_tag(self, key: str, value: str) -> None: ...


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "pandas", "numpy", "skops")]


class MlflowRegistry:
    def __init__(
        self,
        tracking_uri: str,
        artifact_root: Path,
        model_name: str,
        experiment: str,
        *,
        keep_rejected_versions: bool = False,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.keep_rejected_versions = keep_rejected_versions
        self.artifact_root = artifact_root
        self.model_name = model_name
        self.experiment = experiment
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._loaded: dict[str, Champion] = {}

    def open(self) -> None:
        from mlflow.exceptions import MlflowException

        _, self._client = open_mlflow(self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            self._experiment_id = found.experiment_id
            return
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        try:
            self._experiment_id = self._client.create_experiment(
                self.experiment, artifact_location=self.artifact_root.as_uri()
            )
        except MlflowException as exc:  # another instance, starting beside this one, created it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            created = self._client.get_experiment_by_name(self.experiment)
            assert created is not None, f"experiment {self.experiment} exists, yet is not found"
            self._experiment_id = created.experiment_id

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def champion(self) -> Champion | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.model_name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise
        number = str(version.version)
        if number not in self._loaded:
            self._loaded = {number: self._load(number, version.run_id, version.tags)}
        return self._loaded[number]

    def _load(self, version: str, run_id: str | None, tags: dict[str, str]) -> Champion:
        import mlflow

        model = mlflow.pyfunc.load_model(f"models:/{self.model_name}/{version}")
        features = [f for f in tags.get("features", "").split(",") if f]
        if not features:
            features = list(model.metadata.get_input_schema().input_names())

        def score(frame: pd.DataFrame) -> np.ndarray:
            return np.asarray(model.predict(frame[features]))[:, 1]

        return Champion(version, run_id or "", features, score)

    def log_candidate(self, candidate: Candidate) -> tuple[str, str]:
        """One run with everything, the model registered: (run_id, model version)."""
        import mlflow
        from mlflow.models import infer_signature

        self.client  # noqa: B018 (opens the experiment)
        proba = candidate.pipeline.predict_proba(candidate.example)
        with warnings.catch_warnings():  # int64 inputs are the contract: MLflow's hint about NaNs is moot
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(candidate.example, proba)
        with mlflow.start_run(experiment_id=self._experiment_id, run_name=run_name(candidate.tags)) as run:
            mlflow.log_params(candidate.params)
            mlflow.log_metrics(candidate.metrics)
            mlflow.set_tags(candidate.tags)
            for name, document in candidate.artifacts.items():
                mlflow.log_dict(document, name)
            if "calibration/reliability.json" in candidate.artifacts:
                log_reliability_figure(candidate.artifacts["calibration/reliability.json"])
            if candidate.training_set is not None:
                log_training_set(candidate.training_set)
                log_dataset_input(candidate.training_set, self.model_name, candidate.dataset_sha256)
            info = mlflow.sklearn.log_model(
                candidate.pipeline,
                name="model",
                signature=signature,
                input_example=candidate.example,
                registered_model_name=self.model_name,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=pip_requirements(),
                metadata=model_card(candidate).metadata(),
            )
        version = str(info.registered_model_version)
        tags = {
            "positive_class": POSITIVE_CLASS,
            "decision_threshold": str(candidate.decision_threshold),
            "features": ",".join(candidate.inputs),
            "run_id": run.info.run_id,
            "dataset_sha256": candidate.dataset_sha256,
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)
        return run.info.run_id, version

    def record_gate(
        self, run_id: str, version: str, evidence: GateEvidence, metrics: dict[str, float]
    ) -> None:
        """The verdict on the run and the version, each check's interval as run metrics, and the whole
        evidence (method, confidence, mitigation) as the run's `gate/evidence.json`."""
        intervals = {
            f"gate_{check.name}_{end}": bound
            for check in evidence.checks
            for end, bound in (("value", check.value), ("low", check.low), ("high", check.high))
            if bound is not None and math.isfinite(bound)
        }
        for key, value in (metrics | intervals).items():
            self.client.log_metric(run_id, key, value)
        verdict = evidence.verdict or "unknown"
        passed = "passed" if verdict == "promote" else "rejected"  # the model card reads "gate"
        for key, text in (("gate", passed), ("gate_verdict", verdict)):
            self.client.set_tag(run_id, key, text)
            self.client.set_model_version_tag(self.model_name, version, key, text)
        self.client.set_tag(run_id, "gate_method", evidence.method or "")
        self.client.log_dict(run_id, evidence.model_dump(mode="json"), "gate/evidence.json")
        description = version_description(evidence, self.client.get_run(run_id).data.tags)
        self.client.update_model_version(self.model_name, version, description=description)
        if verdict != "promote" and not self.keep_rejected_versions:
            self._unregister(run_id, version)

    def _unregister(self, run_id: str, version: str) -> None:
        """A rejected candidate out of the champion's way: the run (and the model logged in it) stays,
        the registry version goes. The tag comes first, so a crash in between leaves it findable."""
        self.client.set_tag(run_id, "registered_version", version)
        self.client.set_tag(run_id, "registry", "version deleted: rejected by the gate")
        self.client.delete_model_version(self.model_name, version)
        log.info("rejected candidate %s unregistered; its run %s keeps the model", version, run_id)

    def promote(self, version: str) -> None:
        self.set_alias(CHAMPION, version)

    def version_of(self, alias: str) -> str | None:
        """The version an alias points at (None: the alias, or the model, does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise

    def version_exists(self, version: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_model_version(self.model_name, version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return False
            raise
        return True

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def delete_alias(self, alias: str) -> None:
        self.client.delete_registered_model_alias(self.model_name, alias)

    def model_tag(self, key: str) -> str | None:
        tags: dict[str, str] = self.client.get_registered_model(self.model_name).tags
        return tags.get(key)

    def set_model_tag(self, key: str, value: str) -> None:
        self.client.set_registered_model_tag(self.model_name, key, value)
