"""Two training instances starting side by side (the cluster profile) both find the experiment
missing and create it: the second's create fails in MLflow (RESOURCE_ALREADY_EXISTS), and it opens
the one the first created instead of failing its start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from services.training.adapters.mlflow_registry import MlflowRegistry


def test_an_instance_that_loses_the_race_to_create_the_experiment_opens_the_winners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowRegistry(uri, tmp_path / "artifacts", "credit", "credit-risk")
    second = MlflowRegistry(uri, tmp_path / "artifacts", "credit", "credit-risk")
    looked = MlflowClient.get_experiment_by_name
    calls: list[str] = []

    def before_the_other_created_it(client: MlflowClient, name: str) -> Any:
        calls.append(name)
        if len(calls) == 1:  # the second instance looks first...
            first.open()  # ...then the first creates the experiment before the second does
            return None
        return looked(client, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", before_the_other_created_it)
    second.open()
    assert second._experiment_id is not None and second._experiment_id == first._experiment_id
    assert len(calls) == 3  # the second looked, lost the race to create, and looked again


def test_any_other_failure_to_create_the_experiment_still_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    def refused(*_: Any, **__: Any) -> str:
        raise MlflowException("the tracking server refused it", error_code="PERMISSION_DENIED")

    monkeypatch.setattr(MlflowClient, "create_experiment", refused)
    registry = MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "a", "credit", "credit-risk")
    with pytest.raises(MlflowException, match="refused it"):
        registry.open()
