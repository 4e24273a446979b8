"""Global explanations of one model version on its reference sample: permutation importance (drop in
ROC AUC when a feature is shuffled; mean |change| of P(bad) when no labels were logged), partial
dependence of the top numeric features, as JSON plus PNG plots. Blocking: run in a worker thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.explain.domain.model import ExplainableModel


def explain_globally(
    model: ExplainableModel, folder: Path, rows: int, pdp_features: int, seed: int
) -> dict[str, Any]:
    """Writes global.json, importance.png and pdp_<feature>.png into `folder`; returns the JSON."""
    started = time.perf_counter()
    sample = model.reference.sample(min(rows, len(model.reference)), random_state=seed)
    x = sample[model.feature_names]
    importances, measure = _importance(model, x, sample, seed)
    numeric = [name for name, _ in importances if name not in model.categorical][:pdp_features]
    pdp = {name: _pdp(model, x, name) for name in numeric}
    report = {
        "model_name": model.name,
        "model_version": model.version,
        "reference_rows": len(x),
        "importance_measure": measure,
        "permutation_importance": [{"feature": n, "importance": v} for n, v in importances],
        "partial_dependence": pdp,
        "seconds": round(time.perf_counter() - started, 3),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "global.json").write_text(json.dumps(report, indent=2))
    _plots(importances, pdp, folder)
    return report


def _importance(
    model: ExplainableModel, x: pd.DataFrame, sample: pd.DataFrame, seed: int
) -> tuple[list[tuple[str, float]], str]:
    rng = np.random.default_rng(seed)
    base = model.p_bad(x)
    labels = sample["label"].to_numpy() if "label" in sample and sample["label"].nunique() == 2 else None
    if labels is not None:
        from sklearn.metrics import roc_auc_score

        reference_auc = roc_auc_score(labels, base)
    scores: list[tuple[str, float]] = []
    for name in model.feature_names:
        shuffled = x.copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        p = model.p_bad(shuffled)
        value = (
            reference_auc - roc_auc_score(labels, p)
            if labels is not None
            else float(np.mean(np.abs(p - base)))
        )
        scores.append((name, float(value)))
    measure = "roc_auc_drop" if labels is not None else "mean_abs_change_p_bad"
    return sorted(scores, key=lambda s: s[1], reverse=True), measure


def _pdp(model: ExplainableModel, x: pd.DataFrame, name: str) -> dict[str, list[float]]:
    grid = np.unique(np.quantile(x[name], np.linspace(0.05, 0.95, 10)))
    means = []
    for value in grid:
        varied = x.copy()
        varied[name] = value if x[name].dtype.kind == "f" else round(float(value))
        means.append(float(model.p_bad(varied).mean()))
    return {"values": [float(v) for v in grid], "mean_p_bad": means}


def _plots(
    importances: list[tuple[str, float]], pdp: dict[str, dict[str, list[float]]], folder: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = importances[:15][::-1]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.barh([n for n, _ in top], [v for _, v in top])
    ax.set_title("Permutation importance")
    fig.tight_layout()
    fig.savefig(folder / "importance.png", dpi=80)
    plt.close(fig)
    for name, curve in pdp.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(curve["values"], curve["mean_p_bad"], marker="o")
        ax.set_xlabel(name)
        ax.set_ylabel("mean P(bad)")
        ax.set_title(f"Partial dependence: {name}")
        fig.tight_layout()
        fig.savefig(folder / f"pdp_{name}.png", dpi=80)
        plt.close(fig)
