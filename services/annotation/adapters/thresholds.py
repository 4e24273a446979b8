"""A model version's decision threshold, from its model card in MLflow (`contracts.model`, the reader
serving and explain use), cached per version. A card that cannot be read gives None (the handler falls
back to the policy's default and counts it); the version is tried again after `retry_s`."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from contracts.model import read_registered_card
from servicekit.mlflow_store import open_mlflow

log = logging.getLogger(__name__)


class MlflowThresholds:
    """Implements the handlers' `Thresholds` port. Blocks: call it in a thread."""

    def __init__(self, tracking_uri: str, retry_s: float = 60.0) -> None:
        self.tracking_uri = tracking_uri
        self.retry_s = retry_s
        self._known: dict[tuple[str, str], float] = {}
        self._failed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._mlflow: Any = None
        self._client: Any = None

    def threshold(self, model_name: str, version: str) -> float | None:
        key = (model_name, version)
        with self._lock:
            if key in self._known:
                return self._known[key]
            failed_at = self._failed.get(key)
            if failed_at is not None and time.monotonic() - failed_at < self.retry_s:
                return None
        try:
            if self._client is None:
                self._mlflow, self._client = open_mlflow(self.tracking_uri)
            tags = dict(self._client.get_model_version(model_name, version).tags)
            info = self._mlflow.models.get_model_info(f"models:/{model_name}/{version}")
            value = float(read_registered_card(version, info, tags).decision_threshold)
        except Exception as exc:
            log.warning(
                "model card of %s version %s could not be read (%s): the policy's default threshold is used",
                model_name,
                version,
                type(exc).__name__,
            )
            with self._lock:
                self._failed[key] = time.monotonic()
            return None
        with self._lock:
            self._known[key] = value
            self._failed.pop(key, None)
        return value
