"""The MLflow model registry: which version an alias points at, and loading a version.

Loading follows the MODEL CONTRACT (docs/serving.md): a scikit-learn pipeline logged with a
signature whose inputs are the model's features, version tags `decision_threshold`, `features` and
`positive_class=bad`. Anything else is a ModelLoadError, and the caller keeps the model it has.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from servicekit.mlflow_store import open_mlflow
from services.serving.domain.model import Column, Kind, LoadedModel
from services.serving.domain.scoring import Scorer, SklearnScorer, compile_linear, verified
from services.serving.errors import ModelLoadError
from services.serving.settings import ServingSettings

log = logging.getLogger(__name__)

_KINDS: dict[str, Kind] = {
    "long": "int",
    "integer": "int",
    "double": "float",
    "float": "float",
    "string": "str",
}


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

    def load(self, version: str, alias: str) -> LoadedModel:
        started = time.perf_counter()
        mlflow = self._mlflow()
        uri = f"models:/{self.name}/{version}"
        try:
            tags = dict(self._client.get_model_version(self.name, version).tags)
            signature = mlflow.models.get_model_info(uri).signature
            pipeline = mlflow.sklearn.load_model(uri)
        except Exception as exc:  # a corrupted or missing artifact, or a registry error
            raise ModelLoadError(f"version {version}: {type(exc).__name__}: {exc}") from exc
        columns = _columns(version, signature, tags)
        if tags.get("positive_class", "bad") != "bad":
            raise ModelLoadError(
                f"version {version}: positive_class is {tags['positive_class']!r}, not 'bad'"
            )
        if not hasattr(pipeline, "predict_proba"):
            raise ModelLoadError(f"version {version}: the model has no predict_proba")
        return LoadedModel(
            name=self.name,
            version=version,
            alias=alias,
            columns=columns,
            threshold=_threshold(version, tags),
            scorer=self._scorer(pipeline, columns, version),
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


def _columns(version: str, signature: Any, tags: dict[str, str]) -> tuple[Column, ...]:
    if signature is None or signature.inputs is None:
        raise ModelLoadError(f"version {version}: logged without an input signature")
    columns: list[Column] = []
    for spec in signature.inputs.inputs:
        kind = _KINDS.get(getattr(spec.type, "name", str(spec.type)))
        if spec.name is None or kind is None:
            raise ModelLoadError(f"version {version}: input {spec.name!r} has unsupported type {spec.type}")
        columns.append(Column(spec.name, kind))
    declared = tags.get("features")
    if declared is not None and declared.split(",") != [c.name for c in columns]:
        raise ModelLoadError(f"version {version}: the features tag does not match the signature inputs")
    return tuple(columns)


def _threshold(version: str, tags: dict[str, str]) -> float:
    try:
        threshold = float(tags.get("decision_threshold", "0.5"))
    except ValueError:
        raise ModelLoadError(f"version {version}: decision_threshold is not a number") from None
    if not 0.0 <= threshold <= 1.0:
        raise ModelLoadError(f"version {version}: decision_threshold {threshold} is outside [0, 1]")
    return threshold
