"""What a candidate's run carries besides params and metrics: the model card logged with the model,
the training set (as a Parquet artifact and as the run's MLflow dataset input), and the figure of the
calibration's reliability curve.

Called inside an active run (`mlflow.start_run`) by `mlflow_registry.MlflowRegistry.log_candidate`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from contracts.model import Column, Kind, ModelCard
from services.training.domain.dataset import LABEL

if TYPE_CHECKING:
    from services.training.adapters.mlflow_registry import Candidate

log = logging.getLogger(__name__)

POSITIVE_CLASS = "bad"


def model_card(candidate: Candidate) -> ModelCard:
    """The card logged with the model: types from the example, the profile from the training set."""
    frame = candidate.training_set if candidate.training_set is not None else candidate.example
    columns = [Column(name, _kind(candidate.example[name])) for name in candidate.inputs]
    return ModelCard.profiled(
        columns,
        {name: frame[name].tolist() for name in candidate.inputs},
        positive_class=POSITIVE_CLASS,
        decision_threshold=candidate.decision_threshold,
        window_start=candidate.tags.get("window_start") or None,
        window_end=candidate.tags.get("window_end") or None,
        dataset_sha256=candidate.dataset_sha256,
        calibration=candidate.calibration,
    )


def _kind(series: pd.Series) -> Kind:
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "float"
    return "str"


def log_dataset_input(frame: pd.DataFrame, model_name: str, sha256: str) -> None:
    """The training set as the run's MLflow input ("Datasets" in the UI): its schema, row count and
    digest, linked to the parquet file logged under dataset/."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    with warnings.catch_warnings():  # the same moot hint about integer columns as the signature's
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        dataset = from_pandas(frame, name=f"{model_name}-training", targets=LABEL, digest=sha256[:16])
    mlflow.log_input(dataset, context="training")


def log_training_set(frame: pd.DataFrame) -> None:
    """The training set itself, so an auditor (or the symmetry test) sees exactly what the model
    learned from. It holds features and labels only: PII never reaches the feature store."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "training_set.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="dataset")


def log_reliability_figure(document: dict[str, Any]) -> None:
    """The holdout's reliability diagram (raw and calibrated) as `calibration/reliability.png`, when
    matplotlib is installed (the JSON document beside it holds the same curves)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: the reliability curve is logged as JSON only")
        return
    import mlflow

    figure, axes = plt.subplots(figsize=(5, 5))
    try:
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
        for key, style in (("raw", "o--"), ("calibrated", "s-")):
            curve = document.get(key) or {}
            axes.plot(curve.get("mean_predicted", []), curve.get("fraction_positive", []), style, label=key)
        found = document.get("calibration", {})
        axes.set_title(
            f"Holdout reliability, ECE {found.get('holdout_ece_before', float('nan')):.3f} -> "
            f"{found.get('holdout_ece_after', float('nan')):.3f}"
        )
        axes.set_xlabel("mean predicted P(bad), per bin")
        axes.set_ylabel("observed share of bad, per bin")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.legend(loc="upper left")
        mlflow.log_figure(figure, "calibration/reliability.png")
    finally:
        plt.close(figure)
