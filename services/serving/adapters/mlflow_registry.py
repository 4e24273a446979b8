"""The MLflow model registry: which version an alias points at, and loading a version.

Loading follows the MODEL CONTRACT (docs/serving.md): a scikit-learn pipeline logged with a
signature whose inputs are the model's features, and its card (`contracts.model`, read by the same
code as explain's) with `positive_class=bad`. Anything else is a ModelLoadError, and the caller keeps
the model it has.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from contracts.model import Column, ModelCardError, read_registered_card
from servicekit.mlflow_store import open_mlflow
from services.serving.domain.model import LoadedModel
from services.serving.domain.scoring import Scorer, SklearnScorer, compile_linear, verified
from services.serving.errors import ModelLoadError
from services.serving.settings import ServingSettings

log = logging.getLogger(__name__)


class MlflowRegistry:
    """Implements the handlers' `ModelRegistry` port. Every method blocks: call it in a thread."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.name = settings.model_name
        self._client: Any = None
        self._mlflow_module: Any = None

    def _mlflow(self) -> Any:
        if self._client is None:
            self._mlflow_module, self._client = open_mlflow(
                self.settings.mlflow_uri, allow_pickled_models=self.settings.trust_registry_models
            )
        return self._mlflow_module

    def version_of(self, alias: str) -> str | None:
        """The version `alias` points at, or None when the model or alias does not exist yet."""
        from mlflow.exceptions import MlflowException

        self._mlflow()
        try:
            return str(self._client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def model_tag(self, key: str) -> str | None:
        """A tag of the registered model (None when the model or the tag does not exist)."""
        from mlflow.exceptions import MlflowException

        self._mlflow()
        try:
            tags: dict[str, str] = self._client.get_registered_model(self.name).tags
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return tags.get(key)

    def load(self, version: str, alias: str) -> LoadedModel:
        started = time.perf_counter()
        mlflow = self._mlflow()
        uri = f"models:/{self.name}/{version}"
        try:
            tags = dict(self._client.get_model_version(self.name, version).tags)
            info = mlflow.models.get_model_info(uri)
            pipeline = mlflow.sklearn.load_model(uri)
        except Exception as exc:  # a corrupted or missing artifact, or a registry error
            raise ModelLoadError(f"version {version}: {type(exc).__name__}: {exc}") from exc
        try:
            card = read_registered_card(version, info, tags)
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from None
        if card.positive_class != "bad":
            raise ModelLoadError(f"version {version}: positive_class is {card.positive_class!r}, not 'bad'")
        columns = tuple(card.features)
        if not hasattr(pipeline, "predict_proba"):
            raise ModelLoadError(f"version {version}: the model has no predict_proba")
        return LoadedModel(
            name=self.name,
            version=version,
            alias=alias,
            columns=columns,
            threshold=card.decision_threshold,
            scorer=self._scorer(pipeline, columns, version),
            card=card,
            loaded_at=datetime.now(UTC),
            load_seconds=time.perf_counter() - started,
        )

    def _scorer(self, pipeline: Any, columns: tuple[Column, ...], version: str) -> Scorer:
        reference = SklearnScorer(pipeline, columns)
        compiled = compile_linear(pipeline, columns) if self.settings.fast_linear_scoring else None
        if compiled is not None and verified(compiled, reference, columns):
            return compiled
        if compiled is not None:
            log.warning(
                "compiled scorer disagrees with the pipeline; using scikit-learn", extra={"v": version}
            )
        return reference
