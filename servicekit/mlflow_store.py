"""Opening the platform's MLflow store the same way in every service that reads or writes models.

MLflow reads some switches from the environment before import, and resolves `models:/` URIs through
the process-wide tracking URI rather than a client's; getting either wrong sends a service to a
different store (MLflow 3 defaults to ./mlflow.db), so this is done in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def open_mlflow(tracking_uri: str, *, allow_pickled_models: bool = False) -> tuple[Any, Any]:
    """(the mlflow module, a client) bound to `tracking_uri`. `allow_pickled_models` lets MLflow
    deserialize registry models, which runs code from their artifacts: only for trusted registries."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if allow_pickled_models:
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow, mlflow.MlflowClient(tracking_uri)
