"""Latency of local explanations (p50, p95 per method) and the cost of a global explanation.

In process, on the reference model (German credit, every feature: StandardScaler + OneHotEncoder +
LogisticRegression, as training registers it), with the explain service's default settings
(background 50 rows, Kernel SHAP 500 samples, LIME 1000 samples). The first call per method (explainer
construction) is reported apart. `python -m bench.explain_latency [--n 30]`.
Results: bench/results/explain_latency.json.
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
from services.explain.domain.model import Column, ExplainableModel, Kind
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
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in x.iloc[100 : 101 + n].to_dict("records")
    ]
    methods = {
        "shap": lambda r: engine.shap(model, r),
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


if __name__ == "__main__":
    main()
