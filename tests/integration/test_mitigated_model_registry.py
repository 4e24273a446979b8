"""A fairness-mitigated candidate (fairlearn's mixture, served as a soft-voting ensemble) goes through
the real MLflow registry: training logs it with its gate evidence, and serving and explain load it
without fairlearn and without the sensitive attribute, scoring exactly as the mixture does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.events import GateEvidence
from services.explain.adapters.mlflow_models import MlflowModels
from services.explain.settings import ExplainSettings
from services.serving.adapters.mlflow_registry import MlflowRegistry as ServingRegistry
from services.serving.settings import ServingSettings
from services.training.adapters.mlflow_registry import Candidate, MlflowRegistry
from services.training.domain.mitigation import mitigate
from services.training.domain.model import build_pipeline
from services.training.domain.policy import GatePolicy
from workbench.serving_devdata import LABEL, germancredit

MODEL = "mitigated-test"
INPUTS = ["duration_in_month", "credit_amount", "age_in_years", "purpose", "housing", "credit_history"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("mitigated")
    return f"sqlite:///{root / 'mlflow.db'}", root


def training_frame() -> pd.DataFrame:
    data = germancredit()
    frame = data[[*INPUTS, "personal_status_and_sex"]].copy()
    frame["credit_amount"] = frame["credit_amount"].astype(float)
    frame["label"] = (data[LABEL] == "bad").astype("int64")
    return frame


def test_a_mitigated_mixture_is_registered_and_served_as_the_mixture_scores(
    registry: tuple[str, Path],
) -> None:
    uri, root = registry
    policy = GatePolicy()
    train = training_frame()
    fitted = build_pipeline(INPUTS, policy.model).fit(train[INPUTS], train["label"])
    mitigated = mitigate(fitted, train, INPUTS, "dpd_sex", policy)
    assert "ExponentiatedGradient" in mitigated.method and "DemographicParity" in mitigated.method
    writer = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL)
    example = train[INPUTS].head(5).reset_index(drop=True)
    run_id, version = writer.log_candidate(
        Candidate(
            pipeline=mitigated.pipeline, inputs=INPUTS, example=example, decision_threshold=0.5,
            dataset_sha256=hashlib.sha256(b"rows").hexdigest(),
            tags={"mitigation": mitigated.method, "mitigation_of_run": "run-0"},
            training_set=train[[*INPUTS, "label"]],
        )
    )  # fmt: skip
    evidence = GateEvidence(checks=[], candidate_metrics={"auc": 0.7}, verdict="promote",
                            mitigation={"method": mitigated.method, "unmitigated_dpd_sex": 0.2})  # fmt: skip
    writer.record_gate(run_id, version, evidence, {})

    common = {"state_dir": root / "state", "mlflow_tracking_uri": uri, "model_name": MODEL}
    served = ServingRegistry(ServingSettings(**common)).load(version, "champion")  # type: ignore[arg-type]
    rows = train[INPUTS].head(50).to_dict("records")
    expected = mitigated.pipeline.predict_proba(train[INPUTS].head(50))[:, 1]
    assert np.allclose(served.scorer.score(rows), expected, atol=1e-9)
    assert "personal_status_and_sex" not in [c.name for c in served.columns]  # not needed to predict
    assert served.card is not None and served.card.gate == "passed"
    assert MlflowModels(ExplainSettings(**common)).get(version).threshold == 0.5  # type: ignore[arg-type]

    import mlflow

    client = mlflow.MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    assert tags["gate_verdict"] == "promote" and tags["mitigation_of_run"] == "run-0"
    stored = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="gate/evidence.json",
                                                 tracking_uri=uri)  # fmt: skip
    assert json.loads(Path(stored).read_text())["mitigation"]["method"] == mitigated.method
