"""What accuracy the closed loop can recover to, on the demo's data (docs/closed-loop.md).

The demo replays German credit's 1000 rows, so the champion trained on 2000 streamed rows (every row
twice) is scored on rows it learnt from: its "accuracy before the drift" is an in-sample figure. A
retrain since the change learns from a few hundred rows. This measures, with the training service's
model (logistic regression on standardised numerics and one-hot categoricals, the sensitive
attributes excluded, C from the shipped policy):

- in-sample accuracy on the 1000 rows (what v1 shows before the drift),
- 10-fold out-of-sample accuracy (what it would show on new applicants),
- the accuracy on the replay of a model trained on N resampled rows, for the N a retrain since the
  change sees (median over seeds): the ceiling of "accuracy after recovery".

    .venv/bin/python -m bench.loop_accuracy_ceiling [--seeds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from services.training.domain.policy import load_policy
from services.training.settings import DEFAULT_POLICY
from workbench.demo_data import LABEL_FIELD, german_credit

RESULTS = Path(__file__).resolve().parent / "results" / "loop_accuracy_ceiling.json"


def model(numeric: list[str], categorical: list[str], c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [("n", StandardScaler(), numeric), ("c", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )
    return make_pipeline(columns, LogisticRegression(C=c, max_iter=1000))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    from sklearn.model_selection import cross_val_score

    policy = load_policy(DEFAULT_POLICY)
    excluded = set(policy.exclude_features)
    numeric = [f for f in NUMERIC_FEATURES if f not in excluded]
    categorical = [f for f in CATEGORICAL_FEATURES if f not in excluded]
    rows = pd.DataFrame(german_credit())
    x, y = rows[numeric + categorical], (rows[LABEL_FIELD] == "bad").astype(int)
    pipe = model(numeric, categorical, policy.model.C)
    pipe.fit(x, y)
    folds = cross_val_score(pipe, x, y, cv=10, scoring="accuracy")
    result: dict[str, Any] = {
        "in_sample_accuracy": float((pipe.predict(x) == y).mean()),
        "out_of_sample_accuracy_10_fold": float(folds.mean()),
        "trained_on_n_rows": {},
    }
    train_share = 1 - policy.holdout_share
    for labels in (policy.min_new_labels, policy.follow_up_labels or 1500, 2000):
        n = int(labels * train_share)
        scores = []
        for seed in range(args.seeds):
            index = np.random.default_rng(seed).choice(len(rows), n, replace=True)
            pipe.fit(x.iloc[index], y.iloc[index])
            scores.append(float((pipe.predict(x) == y).mean()))
        result["trained_on_n_rows"][str(n)] = {"labels": labels, "median_accuracy": statistics.median(scores)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
