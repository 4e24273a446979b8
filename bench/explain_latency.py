"""Latency of local explanations (p50, p95 per method) and the cost of a global explanation.

In process, on the reference model (German credit, every feature: StandardScaler + OneHotEncoder +
LogisticRegression, as training registers it), with the explain service's default settings
(background 50 rows, Kernel SHAP 500 samples, LIME 1000 samples). SHAP is timed both ways on the same
rows in the same run: the exact linear path the service uses for this model, and Kernel SHAP (OmniXAI)
as the baseline; the speed-up is the ratio of the medians. How far the two disagree is reported too:
they play slightly different games (mean of log-odds vs log-odds of the mean probability, see
services/explain/domain/linear_shap.py), and Kernel SHAP misreads categories absent from its
background (its additivity check then fails). The first call per method (explainer construction) is
reported apart. `python -m bench.explain_latency [--n 30]`. Results: bench/results/explain_latency.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from services.explain.adapters.global_explainer import explain_globally
from services.explain.adapters.omnixai_engine import OmniXaiEngine
from services.explain.domain import counterfactual
from services.explain.domain.fidelity import shap_additivity
from services.explain.domain.model import Column, Contribution, ExplainableModel, Kind, Scalar, logit
from services.explain.settings import ExplainSettings
from workbench.serving_devdata import LABEL, fit_reference_pipeline, germancredit

RESULTS = Path(__file__).resolve().parent / "results" / "explain_latency.json"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.explain_latency")
    p.add_argument("--n", type=int, default=30, help="explanations per method")
    n = p.parse_args().n
    s = ExplainSettings()
    pipeline, x = fit_reference_pipeline()
    kinds: dict[str, Kind] = {"O": "str", "f": "float", "i": "int"}
    columns = tuple(Column(c, kinds[x[c].dtype.kind]) for c in x.columns)
    reference = x.assign(label=(germancredit()[LABEL] == "bad").astype(int))
    model = ExplainableModel("credit-risk", "1", columns, 0.5, pipeline, reference)
    engine = OmniXaiEngine(s.background_rows, s.shap_nsamples, s.lime_samples, s.seed)
    kernel = OmniXaiEngine(s.background_rows, s.shap_nsamples, s.lime_samples, s.seed, exact_linear=False)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in x.iloc[100 : 101 + n].to_dict("records")
    ]
    shap_runs: dict[str, list[tuple[list[Contribution], float, str]]] = {"shap": [], "shap_kernel": []}
    methods = {
        "shap": lambda r: shap_runs["shap"].append(engine.shap(model, r)),
        "shap_kernel": lambda r: shap_runs["shap_kernel"].append(kernel.shap(model, r)),
        "lime": lambda r: engine.lime(model, r),
        "counterfactual": lambda r: counterfactual.search(model.p_bad, columns, r, reference, 0.5),
    }
    results: dict[str, object] = {"features": len(columns), "n": n}
    for name, run in methods.items():
        started = time.perf_counter()
        run(rows[0])
        first = time.perf_counter() - started
        times = []
        for r in rows[1:]:
            started = time.perf_counter()
            run(r)
            times.append((time.perf_counter() - started) * 1000)
        p50, p95 = (float(np.percentile(times, q)) for q in (50, 95))
        results[name] = {"first_ms": first * 1000, "p50_ms": p50, "p95_ms": p95}
        print(f"{name:15s} first {first * 1000:7.1f} ms  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
    exact_ms, kernel_ms = results["shap"], results["shap_kernel"]
    assert isinstance(exact_ms, dict) and isinstance(kernel_ms, dict)
    results["shap_algorithm"] = shap_runs["shap"][0][2]
    results["shap_speedup_p50"] = kernel_ms["p50_ms"] / exact_ms["p50_ms"]
    results["shap_agreement"] = agreement(model, rows, shap_runs["shap"], shap_runs["shap_kernel"])
    print(
        f"SHAP ({results['shap_algorithm']}) p50 {kernel_ms['p50_ms'] / exact_ms['p50_ms']:.0f}x faster than "
        f"Kernel SHAP; agreement {results['shap_agreement']}"
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        explain_globally(model, Path(folder), s.global_rows, s.pdp_features, s.seed)
        seconds = time.perf_counter() - started
    results["global_s"] = seconds
    print(
        f"global (permutation importance, {s.pdp_features} PDP, PNGs, {s.global_rows} rows): {seconds:.2f} s"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


def agreement(
    model: ExplainableModel,
    rows: list[dict[str, Scalar]],
    exact: list[tuple[list[Contribution], float, str]],
    kernel: list[tuple[list[Contribution], float, str]],
) -> dict[str, float]:
    """How the exact values and the Kernel SHAP estimates compare on the same rows."""
    gaps, same_top, additive = [], 0, {"exact": 0, "kernel": 0}
    for row, (e_values, e_base, _), (k_values, k_base, _) in zip(rows, exact, kernel, strict=True):
        e = {c.feature: c.contribution for c in e_values}
        k = {c.feature: c.contribution for c in k_values}
        gaps.append(max(abs(e[f] - k[f]) for f in e))
        same_top += max(e, key=lambda f: abs(e[f])) == max(k, key=lambda f: abs(k[f]))
        output = logit(float(model.p_bad(model.frame([row]))[0]))
        for name, values, base in (("exact", e, e_base), ("kernel", k, k_base)):
            additive[name] += bool(
                shap_additivity(list(values.values()), base, output, 1e-3)["shap_additive"]
            )
    return {
        "median_max_abs_gap": float(np.median(gaps)),
        "same_top_feature_share": same_top / len(rows),
        "exact_additive_share": additive["exact"] / len(rows),
        "kernel_additive_share": additive["kernel"] / len(rows),
    }


if __name__ == "__main__":
    main()
