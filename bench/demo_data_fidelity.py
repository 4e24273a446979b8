"""How close the demo's generated applicants are to German credit (docs/closed-loop.md, "The demo's
data: new applicants, not replays").

For several seeds, with the generator of workbench/applicant_generator.py (medians over seeds):

- marginals: per numeric column the two-sample KS statistic generated-vs-real, per categorical the
  total-variation distance; next to them the same distances for a bootstrap resample of the real
  rows (what sampling noise alone gives at the same size);
- the bad share, the share of generated rows identical on every feature to a real row, and the
  share identical to an earlier generated row;
- the label relationship, with the training service's model (build_pipeline / input_features, the
  default GatePolicy): trained on N generated rows and tested on the real 1000 (AUC, accuracy at
  0.5), against the real data's 10-fold cross-validated AUC / accuracy. Because the generator saw
  the 1000 rows it is tested on, the same is done cross-fitted: per fold the generator is fitted to
  the other nine tenths only and the model tested on the fold it never saw;
- the reverse: a model trained on the real 1000 rows tested on generated rows;
- the cost of one generated applicant (after the one-off fit).

    .venv/bin/python -m bench.demo_data_fidelity [--seeds 10] [--rows 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from services.training.domain.model import build_pipeline, input_features
from services.training.domain.policy import GatePolicy
from workbench.applicant_generator import ApplicantGenerator
from workbench.demo_data import LABEL_FIELD, german_credit

RESULTS = Path(__file__).resolve().parent / "results" / "demo_data_fidelity.json"
TRAIN_SIZES = (1000, 2000)


def generate(generator: ApplicantGenerator, n: int, seed: int) -> pd.DataFrame:
    drawn = generator.sampler(seed).take(n)
    return pd.DataFrame([record | {LABEL_FIELD: label} for record, label in drawn])


def distances(sample: pd.DataFrame, real: pd.DataFrame) -> dict[str, float]:
    """KS for numeric columns, total variation for categorical ones."""
    out: dict[str, float] = {}
    for name in real.columns.drop(LABEL_FIELD):
        if real[name].dtype == object:
            p, q = real[name].value_counts(normalize=True), sample[name].value_counts(normalize=True)
            out[name] = float(0.5 * p.subtract(q, fill_value=0).abs().sum())
        else:
            out[name] = float(ks_2samp(sample[name], real[name], method="asymp").statistic)
    return out


def copy_share(sample: pd.DataFrame, real: pd.DataFrame) -> float:
    features = [c for c in real.columns if c != LABEL_FIELD]
    known = set(real[features].itertuples(index=False, name=None))
    return float(np.mean([row in known for row in sample[features].itertuples(index=False, name=None)]))


def scores(train: pd.DataFrame, test: pd.DataFrame, policy: GatePolicy) -> tuple[float, float]:
    """(AUC, accuracy at 0.5) on `test` of the training service's model fitted to `train`."""
    inputs = input_features(policy)
    model = build_pipeline(inputs, policy.model).fit(train[inputs], train[LABEL_FIELD] == "bad")
    p_bad = model.predict_proba(test[inputs])[:, 1]
    y = (test[LABEL_FIELD] == "bad").to_numpy()
    return float(roc_auc_score(y, p_bad)), float(((p_bad >= 0.5) == y).mean())


def one_seed(real: pd.DataFrame, generator: ApplicantGenerator, seed: int, rows: int) -> dict[str, Any]:
    policy = GatePolicy()
    fake = generate(generator, max(rows, *TRAIN_SIZES), seed)
    bootstrap = real.sample(len(real), replace=True, random_state=seed)
    run: dict[str, Any] = {
        "distance": distances(fake.head(rows), real),
        "bootstrap_distance": distances(bootstrap, real),
        "bad_share": float((fake[LABEL_FIELD] == "bad").mean()),
        "copy_share": copy_share(fake, real),
        "repeat_share": float(fake.drop(columns=LABEL_FIELD).duplicated().mean()),
        "real_on_generated": scores(real, fake.head(rows), policy),
    }
    for n in TRAIN_SIZES:
        run[f"generated_{n}_on_real"] = scores(fake.head(n), real, policy)
    folds = StratifiedKFold(10, shuffle=True, random_state=seed).split(real, real[LABEL_FIELD])
    real_cv: list[tuple[float, float]] = []
    crossfit: dict[int, list[tuple[float, float]]] = {n: [] for n in TRAIN_SIZES}
    for fold, (train_index, test_index) in enumerate(folds):
        train, test = real.iloc[train_index], real.iloc[test_index]
        real_cv.append(scores(train, test, policy))
        fold_generator = ApplicantGenerator(train.to_dict(orient="records"), LABEL_FIELD)
        fold_fake = generate(fold_generator, max(TRAIN_SIZES), seed * 100 + fold)
        for n in TRAIN_SIZES:
            crossfit[n].append(scores(fold_fake.head(n), test, policy))
    run["real_10_fold"] = mean_pair(real_cv)
    for n in TRAIN_SIZES:
        run[f"generated_{n}_crossfit"] = mean_pair(crossfit[n])
    return run


def mean_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return float(np.mean([a for a, _ in pairs])), float(np.mean([b for _, b in pairs]))


def median_of(runs: list[dict[str, Any]], key: str) -> Any:
    first = runs[0][key]
    if isinstance(first, dict):
        return {k: round(statistics.median(r[key][k] for r in runs), 4) for k in first}
    if isinstance(first, tuple):
        auc, acc = (statistics.median(r[key][i] for r in runs) for i in (0, 1))
        return {"auc": round(auc, 4), "accuracy": round(acc, 4)}
    return round(statistics.median(r[key] for r in runs), 4)


def cost_us_per_applicant(generator: ApplicantGenerator, n: int = 20_000) -> float:
    sampler = generator.sampler(0)
    started = time.perf_counter()
    sampler.take(n)
    return (time.perf_counter() - started) / n * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2000, help="generated rows compared per seed")
    args = parser.parse_args(argv)
    real = pd.DataFrame(german_credit())
    started = time.perf_counter()
    generator = ApplicantGenerator(german_credit(), LABEL_FIELD)
    fit_s = time.perf_counter() - started
    runs = [one_seed(real, generator, seed, args.rows) for seed in range(args.seeds)]
    result = {
        "seeds": args.seeds,
        "rows_compared": args.rows,
        "fit_s": round(fit_s, 3),
        "us_per_applicant": round(cost_us_per_applicant(generator), 2),
        **{key: median_of(runs, key) for key in runs[0]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
