"""The model card through a real MLflow registry (SQLite): what training's adapter writes is what
serving's and explain's adapters read, through the same contract code; a model registered before
cards (tags and signature only) still loads, without a profile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from contracts.events import GateCheck, GateEvidence
from services.explain.adapters.mlflow_models import MlflowModels
from services.explain.errors import ModelLoadError as ExplainLoadError
from services.explain.settings import ExplainSettings
from services.serving.adapters.mlflow_registry import MlflowRegistry as ServingRegistry
from services.serving.errors import ModelLoadError as ServingLoadError
from services.serving.settings import ServingSettings
from services.training.adapters.mlflow_logging import model_card
from services.training.adapters.mlflow_registry import Candidate, MlflowRegistry
from workbench.serving_devdata import LABEL, fit_reference_pipeline, germancredit, mlflow_env

MODEL = "card-test"
INPUTS = ["duration_in_month", "credit_amount", "age_in_years", "purpose", "housing"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("cards")
    return f"sqlite:///{root / 'mlflow.db'}", root


def candidate() -> Candidate:
    pipeline, x = fit_reference_pipeline(INPUTS)
    data = germancredit()
    training_set = x.assign(label=(data[LABEL] == "bad").astype(int))
    return Candidate(
        pipeline=pipeline,
        inputs=INPUTS,
        example=x.head(5).reset_index(drop=True),
        decision_threshold=0.37,
        dataset_sha256=hashlib.sha256(b"rows").hexdigest(),
        tags={"window_start": "2026-01-01T00:00:00+00:00", "window_end": "2026-02-01T00:00:00+00:00"},
        training_set=training_set,
    )


def readers(uri: str, root: Path) -> tuple[ServingRegistry, MlflowModels]:
    common = {"state_dir": root / "state", "mlflow_tracking_uri": uri, "model_name": MODEL}
    return ServingRegistry(ServingSettings(**common)), MlflowModels(ExplainSettings(**common))  # type: ignore[arg-type]


def test_training_writes_the_card_that_serving_and_explain_read(registry: tuple[str, Path]) -> None:
    uri, root = registry
    writer = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL)
    written = candidate()
    run_id, version = writer.log_candidate(written)
    writer.record_gate(run_id, version, GateEvidence(checks=[], candidate_metrics={}, verdict="promote"), {})
    serving, explain = readers(uri, root)

    served = serving.load(version, "champion")
    explained = explain.get(version)

    expected = model_card(written).model_copy(update={"gate": "passed"})
    assert served.card == expected
    assert served.card.window_start is not None and served.card.dataset_sha256 == written.dataset_sha256
    assert served.threshold == explained.threshold == 0.37
    assert served.columns == explained.columns == tuple(expected.features)
    assert [c.kind for c in served.columns] == ["int", "float", "int", "str", "str"]
    data = germancredit()
    profile = expected.profile
    assert profile["credit_amount"].maximum == float(data["credit_amount"].max())
    assert profile["purpose"].categories == sorted(data["purpose"].unique())


def test_a_model_registered_before_cards_still_loads_without_a_profile(registry: tuple[str, Path]) -> None:
    uri, root = registry
    version, _ = _register_legacy(uri, root)
    serving, explain = readers(uri, root)
    served = serving.load(version, "champion")
    assert served.card is not None and served.card.profile == {} and served.threshold == 0.42
    assert served.feature_names == tuple(INPUTS)
    assert explain.get(version).threshold == 0.42


def test_a_model_whose_tags_contradict_its_signature_is_refused_by_both(registry: tuple[str, Path]) -> None:
    uri, root = registry
    version, _ = _register_legacy(uri, root, features="duration_in_month,salary")
    serving, explain = readers(uri, root)
    with pytest.raises(ServingLoadError, match="not in the signature"):
        serving.load(version, "champion")
    with pytest.raises(ExplainLoadError, match="not in the signature"):
        explain.get(version)


def _register_legacy(uri: str, root: Path, features: str = ",".join(INPUTS)) -> tuple[str, str]:
    """As training registered models before the card: signature and version tags only."""
    mlflow_env()
    import mlflow
    from mlflow.models import infer_signature

    pipeline, x = fit_reference_pipeline(INPUTS)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name("legacy")
    experiment = found.experiment_id if found else client.create_experiment("legacy", (root / "a").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        frame = pd.concat([x, pd.Series(0, index=x.index, name="label")], axis=1)
        path = root / "training_set.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="dataset")
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(x.head(20), pipeline.predict_proba(x.head(20))),
            registered_model_name=MODEL,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn", "pandas"],
        )
    version = str(info.registered_model_version)
    tags = {
        "features": features,
        "decision_threshold": "0.42",
        "positive_class": "bad",
        "run_id": run.info.run_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(MODEL, version, key, value)
    assert "model_card" not in (mlflow.models.get_model_info(f"models:/{MODEL}/{version}").metadata or {})
    return version, run.info.run_id


def test_the_run_and_version_read_well_in_mlflow(registry: tuple[str, Path]) -> None:
    """Issue 17, item 5, against a real MLflow store: the run is named by what started it, its
    training set is an MLflow dataset input, the version's description states the gate's verdict."""
    from mlflow import MlflowClient

    uri, root = registry
    writer = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL)
    written = candidate()
    written.tags.update({"reason": "manual", "requested_by": "ops:dev-ops"})
    run_id, version = writer.log_candidate(written)
    check = GateCheck(name="auc_not_worse", passed=True, value=0.02, low=0.004, high=0.04, outcome="pass")
    evidence = GateEvidence(
        checks=[check], candidate_metrics={}, verdict="promote", method="paired_bootstrap"
    )
    writer.record_gate(run_id, version, evidence, {})

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "manual run by ops:dev-ops, data to 2026-02-01T00:00"
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == f"{MODEL}-training"
    assert inputs[0].dataset.digest == written.dataset_sha256[:16]
    assert [tag.value for tag in inputs[0].tags if tag.key == "mlflow.data.context"] == ["training"]
    description = client.get_model_version(MODEL, version).description
    assert description.startswith("Gate: promote (paired_bootstrap")
    assert "- auc_not_worse: 0.020 [0.004, 0.040] -> pass" in description


def test_a_rejected_candidate_stays_a_run_but_leaves_the_registry(registry: tuple[str, Path]) -> None:
    """Issue 17, item 5: the registered model lists only versions the gate passed. A rejected
    candidate keeps its run, its model and its evidence, and the run says which number it had."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri, root = registry
    client = MlflowClient(uri)
    writer = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL)
    passed_run, passed = writer.log_candidate(candidate())
    writer.record_gate(
        passed_run, passed, GateEvidence(checks=[], candidate_metrics={}, verdict="promote"), {}
    )
    writer.promote(passed)
    check = GateCheck(name="auc_not_worse", passed=False, value=-0.05, low=-0.08, high=-0.02, outcome="fail")
    rejected_run, rejected = writer.log_candidate(candidate())
    evidence = GateEvidence(checks=[check], candidate_metrics={}, verdict="reject", method="paired_bootstrap")
    writer.record_gate(rejected_run, rejected, evidence, {})

    with pytest.raises(MlflowException):
        client.get_model_version(MODEL, rejected)
    listed = {str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")}
    assert passed in listed and rejected not in listed
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == passed
    tags = client.get_run(rejected_run).data.tags
    assert tags["gate"] == "rejected" and tags["registered_version"] == rejected
    # The model itself is still in the run, loadable for a post-mortem.
    model = mlflow.pyfunc.load_model(f"runs:/{rejected_run}/model")
    rows = candidate().example
    assert model.predict(rows).shape == (len(rows), 2)

    keeper = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL, keep_rejected_versions=True)
    kept_run, kept = keeper.log_candidate(candidate())
    keeper.record_gate(kept_run, kept, evidence, {})
    assert client.get_model_version(MODEL, kept).tags["gate"] == "rejected"


def test_the_calibration_rides_on_the_card_and_its_curve_on_the_run(registry: tuple[str, Path]) -> None:
    """Issue 19: the candidate's Platt map is in the card serving reads; the run holds its metrics and
    the reliability curve (JSON, and a PNG since matplotlib is installed)."""
    from mlflow import MlflowClient
    from sklearn.base import clone

    from services.training.domain.calibration import calibrate

    uri, root = registry
    written = candidate()
    assert written.training_set is not None
    rows = written.training_set

    def refit(part: pd.DataFrame) -> object:
        return clone(written.pipeline).fit(part[INPUTS], part["label"])

    scores = written.pipeline.predict_proba(rows[INPUTS])[:, 1]
    calibrated = calibrate(refit, rows, INPUTS, rows["label"].to_numpy(), scores, seed=7)
    assert calibrated.calibration is not None
    written.calibration = calibrated.calibration
    written.metrics.update(calibrated.metrics())
    written.artifacts["calibration/reliability.json"] = calibrated.reliability
    writer = MlflowRegistry(uri, root / "artifacts", MODEL, MODEL)
    run_id, version = writer.log_candidate(written)
    writer.record_gate(run_id, version, GateEvidence(checks=[], candidate_metrics={}, verdict="promote"), {})

    served = ServingRegistry(
        ServingSettings(state_dir=root / "state", mlflow_tracking_uri=uri, model_name=MODEL)
    )  # type: ignore[arg-type]
    card = served.load(version, "champion").card
    assert card is not None and card.calibration == calibrated.calibration
    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(run_id, "calibration")}
    assert logged == {"calibration/reliability.json", "calibration/reliability.png"}
    metrics = client.get_run(run_id).data.metrics
    assert metrics["calibration_slope"] == pytest.approx(calibrated.calibration.slope)
