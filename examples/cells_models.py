"""The notebook's second half as text: runs and versions in MLflow, one prediction explained, its
lineage in the audit trail. `examples/make_notebook.py` assembles the cells; edit them here and
regenerate."""

MLFLOW_MD = """\
## 4. Compare runs in MLflow

The stack's tracking store and registry (by default SQLite at `<state dir>/mlflow/mlflow.db`, or
`MLFLOW_TRACKING_URI`), the experiment and the model name are read from the training service's own
settings class, so this looks exactly where training logs. Every run carries its holdout metrics, the
champion's metrics on the same holdout (`champion_*`), and the gate's verdict as the tag `gate`."""

MLFLOW = """\
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import mlflow

from infra.settings import InfraSettings
from services.training.settings import TrainingSettings

# state_dir given explicitly: the services' default (".local") is relative to their working directory.
training_settings = TrainingSettings(state_dir=InfraSettings().state_dir)
model_name, experiment = training_settings.model_name, training_settings.experiment
mlflow.set_tracking_uri(training_settings.mlflow_uri)
mlflow_client = mlflow.MlflowClient(training_settings.mlflow_uri)
print(f"MLflow {training_settings.mlflow_uri}, experiment {experiment!r}, model {model_name!r}")

runs = mlflow.search_runs(experiment_names=[experiment], order_by=["start_time DESC"])
columns = {
    "run_id": "run",
    "start_time": "started",
    "tags.reason": "reason",
    "tags.gate": "gate",
    "metrics.auc": "auc",
    "metrics.log_loss": "log_loss",
    "metrics.brier": "brier",
    "metrics.champion_auc": "champion_auc",
    "metrics.champion_log_loss": "champion_log_loss",
    "metrics.holdout_rows": "holdout_rows",
}
runs_table = runs.reindex(columns=list(columns)).rename(columns=columns)
if outcome.run_id is not None:  # a trained candidate is in MLflow with the gate's verdict
    ours = runs_table[runs_table["run"] == outcome.run_id]
    assert len(ours) == 1, f"run {outcome.run_id} is not in experiment {experiment!r}"
    assert (ours["gate"].item() == "passed") == (outcome.status == "promoted")
    assert abs(ours["auc"].item() - outcome.metrics["auc"]) < 1e-9
runs_table.head(10).round(4)"""

REGISTRY_MD = """\
The registered versions, and which one holds the `champion` alias. The alias, not an event, is the
truth about what is served: serving hot-swaps to it when `model.promoted` arrives, so we wait until
`client.model()` agrees with MLflow."""

REGISTRY = """\
champion = mlflow_client.get_model_version_by_alias(model_name, "champion")
champion_version = str(champion.version)  # MLflow gives an int; the platform's APIs give strings
versions = mlflow_client.search_model_versions(f"name = '{model_name}'")
registry = pd.DataFrame(
    [
        {
            "version": int(v.version),
            "champion": str(v.version) == champion_version,
            "gate": v.tags.get("gate"),
            "run": v.run_id,
            "registered": pd.Timestamp(v.creation_timestamp, unit="ms"),
        }
        for v in versions
    ]
).sort_values("version", ascending=False)
print(registry.head(10).to_string(index=False))

if outcome.status == "promoted":
    assert champion_version == outcome.model_version, f"the alias is on v{champion_version}"
elif outcome.model_version is not None:
    assert champion_version != outcome.model_version, "a rejected candidate holds the alias"


def serving_the_champion():
    served = client.model().champion
    return served if served is not None and served.model_version == champion_version else None


served = wait_for(serving_the_champion, f"serving with champion v{champion_version}", 120)
print(f"champion v{champion_version} (run {champion.run_id}) is what serving serves")"""

PREDICT_MD = """\
## 5. One prediction, explained

An applicant from the champion's own training set (logged with its run as
`dataset/training_set.parquet`), scored by entity key with `client.predict`: serving reads the features
from Feast's online store. Explanations are asked by prediction id; the explain service learns of a
prediction from `predictions.made`, so it answers 404 for a moment."""

PREDICT = """\
training_set_path = mlflow.artifacts.download_artifacts(
    run_id=champion.run_id, artifact_path="dataset/training_set.parquet"
)
applicant = str(pd.read_parquet(training_set_path)["application_id"].iloc[-1])
prediction = client.predict(applicant)
assert prediction.model_version == champion_version, prediction
print(
    f"{applicant}: P(bad) {prediction.score:.3f} -> {prediction.decision} "
    f"(model v{prediction.model_version}, prediction {prediction.prediction_id})"
)"""

EXPLAIN = """\
explanation = wait_for(  # 404: not seen on predictions.made yet; 504: explain still warming up
    lambda: not_there_yet(lambda: client.explain(prediction.prediction_id), 404, 504),
    f"explanation of {prediction.prediction_id}",
    120,
)
assert explanation.model_version == prediction.model_version, explanation
assert abs(explanation.p_bad - prediction.score) < 1e-4, "explain and serving disagree on P(bad)"
assert explanation.shap and explanation.shap["contributions"], explanation
print("For the applicant:", explanation.summary)
print("Fidelity checks:", explanation.fidelity)
print(f"SHAP in {explanation.shap['space']}, base value {explanation.shap['base_value']:.3f}:")
pd.DataFrame(explanation.shap["contributions"]).head(8).round(3)"""

LINEAGE_MD = """\
## 6. Where the prediction came from

The audit service keeps every event in a hash chain; `auditor.lineage` walks back from a prediction to
the model version, the promotion and its evidence, the training run, its data window and dataset
version, and what asked for the run. `auditor.verify()` recomputes the chain and holds it against the
signed checkpoints and Kafka."""

LINEAGE = """\
lineage = wait_for(
    lambda: not_there_yet(lambda: auditor.lineage(prediction.prediction_id), 404),
    f"lineage of {prediction.prediction_id}",
    120,
)
# A manual run has no drift event behind it; any other gap is a broken lineage.
missing = [step for step in lineage.missing if not (step == "drift" and lineage.training_request)]
assert not missing, f"lineage of {prediction.prediction_id} lacks {missing}"
assert lineage.model["version"] == prediction.model_version, lineage.model
assert lineage.training_run["run_id"] == champion.run_id, "audit and MLflow disagree on the run"
request = lineage.training_request["event"]["payload"]
print(
    f"prediction {lineage.prediction_id} ({applicant})\\n"
    f"  <- {lineage.model['name']} v{lineage.model['version']}, promoted at "
    f"{lineage.promotion['occurred_at']}\\n"
    f"  <- run {lineage.training_run['run_id']} on applications {lineage.training_window['start']}"
    f" .. {lineage.training_window['end']} (dataset {lineage.dataset['version']})\\n"
    f"  <- training requested ({request['reason']}) by {request['requested_by']}"
)
if lineage.drift is not None:
    print(f"  <- {lineage.drift['event_type']} at {lineage.drift['occurred_at']}")

trail = auditor.verify()
print(f"audit trail: {trail.checked} rows checked, {'intact' if trail.intact else trail.problems}")
stack.close()"""

CELLS: list[tuple[str, str]] = [
    ("markdown", MLFLOW_MD),
    ("code", MLFLOW),
    ("markdown", REGISTRY_MD),
    ("code", REGISTRY),
    ("markdown", PREDICT_MD),
    ("code", PREDICT),
    ("code", EXPLAIN),
    ("markdown", LINEAGE_MD),
    ("code", LINEAGE),
]
