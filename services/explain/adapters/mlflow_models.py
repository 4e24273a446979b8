"""Model versions from the MLflow registry, by version (never "whatever is newest"), cached LRU.

A version is loaded with `models:/name/version`, its inputs and threshold come from its model card
(`contracts.model.read_registered_card`, the same reader serving uses), and its reference sample
is the run's `dataset/training_set.parquet`. Every method blocks: call it in a thread.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.model import Column, ModelCardError, read_registered_card
from servicekit.mlflow_store import open_mlflow
from services.explain.domain.model import ExplainableModel
from services.explain.errors import ModelLoadError, ModelVersionGone, NoChampion
from services.explain.settings import ExplainSettings

log = logging.getLogger(__name__)

MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class MlflowModels:
    """Implements the handlers' `Models` port."""

    def __init__(self, settings: ExplainSettings) -> None:
        self.settings = settings
        self.name = settings.model_name
        self._cache: OrderedDict[str, ExplainableModel] = OrderedDict()
        self._lock = threading.Lock()
        self._client: Any = None
        self._mlflow_module: Any = None

    def _mlflow(self) -> Any:
        if self._client is None:
            self._mlflow_module, self._client = open_mlflow(
                self.settings.mlflow_uri, allow_pickled_models=self.settings.trust_registry_models
            )
        return self._mlflow_module

    def champion_version(self) -> str:
        from mlflow.exceptions import MlflowException

        self._mlflow()
        try:
            return str(
                self._client.get_model_version_by_alias(self.name, self.settings.champion_alias).version
            )
        except MlflowException as exc:
            if exc.error_code in MISSING:
                raise NoChampion(f"model {self.name} has no {self.settings.champion_alias} yet") from exc
            raise

    def get(self, version: str) -> ExplainableModel:
        with self._lock:
            if version in self._cache:
                self._cache.move_to_end(version)
                return self._cache[version]
        model = self._load(version)
        with self._lock:
            self._cache[version] = model
            while len(self._cache) > self.settings.model_cache_size:
                self._cache.popitem(last=False)
        return model

    def _load(self, version: str) -> ExplainableModel:
        from mlflow.exceptions import MlflowException

        mlflow = self._mlflow()
        uri = f"models:/{self.name}/{version}"
        try:
            mv = self._client.get_model_version(self.name, version)
        except MlflowException as exc:
            if exc.error_code in MISSING:
                raise ModelVersionGone(
                    f"model {self.name} version {version} is no longer in the registry"
                ) from exc
            raise
        tags = dict(mv.tags)
        try:
            info = mlflow.models.get_model_info(uri)
            pipeline = mlflow.sklearn.load_model(uri)
        except Exception as exc:
            raise ModelLoadError(f"version {version}: {type(exc).__name__}: {exc}") from exc
        try:
            card = read_registered_card(version, info, tags)
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from None
        columns = tuple(card.features)
        run_id = str(tags.get("run_id") or mv.run_id or "")
        reference = self._reference(run_id, columns)
        log.info("loaded %s version %s (%d reference rows)", self.name, version, len(reference))
        return ExplainableModel(
            self.name, version, columns, card.decision_threshold, pipeline, reference, run_id
        )

    def _reference(self, run_id: str, columns: tuple[Column, ...]) -> pd.DataFrame:
        mlflow = self._mlflow()
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path="dataset/training_set.parquet",
                    dst_path=folder,
                    tracking_uri=self.settings.mlflow_uri,
                )
            except Exception as exc:
                raise ModelLoadError(f"run {run_id}: no dataset/training_set.parquet ({exc})") from exc
            frame = pd.read_parquet(Path(path))
        names = [c.name for c in columns]
        keep = names + (["label"] if "label" in frame.columns else [])
        frame = frame[keep].dropna(subset=names).reset_index(drop=True)
        for column in columns:
            frame[column.name] = frame[column.name].astype(
                {"int": "int64", "float": "float64", "str": str}[column.kind]
            )
        return frame

    def log_global(self, model: ExplainableModel, folder: Path, summary: str) -> str:
        """Store a folder of global explanations as artifacts of the version's run; tag the version,
        and add the top factors in words to its description (the model card a data scientist reads
        in MLflow's UI: training wrote the gate's verdict and the data there)."""
        self._mlflow()
        artifact_path = f"explanations/global-v{model.version}"
        self._client.log_artifacts(model.run_id, str(folder), artifact_path)
        uri = f"runs:/{model.run_id}/{artifact_path}"
        self._client.set_model_version_tag(self.name, model.version, "global_explanation", uri)
        description = self._client.get_model_version(self.name, model.version).description or ""
        line = f"Top factors (permutation importance): {summary}"
        if line not in description:
            text = f"{description.rstrip()}\n{line}".lstrip()
            self._client.update_model_version(self.name, model.version, description=text)
        return uri

    def global_uri(self, version: str) -> str | None:
        self._mlflow()
        return dict(self._client.get_model_version(self.name, version).tags).get("global_explanation")
