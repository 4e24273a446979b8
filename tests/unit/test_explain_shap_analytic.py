"""OmniXAI's SHAP (adapted to shap 0.51) against a model whose true contributions are known.

A logistic regression on standardized numeric features is linear in log-odds. We explain in log-odds
(OmniXAI's logit link), so:
- with a single background row b, v(S) = logit p(x_S, b_rest) is linear and the SHAP value of feature
  j is analytic: coef_j * (x_j - b_j) / scale_j;
- with a small background, the exact interventional Shapley values of v(S) = logit(mean_b p(x_S, b_rest))
  are computed by brute force over every coalition and must match.
Without `install_shap_fix`, OmniXAI reads shap 0.51's (rows, features, classes) array as a list per
class and these tests fail (verified by removing the wrapper).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from services.explain.adapters.omnixai_engine import OmniXaiEngine
from services.explain.domain.model import Column, Contribution, ExplainableModel, logit
from tests.unit.test_explain_support import shapley_values

NAMES = ["duration_in_month", "credit_amount", "age_in_years"]


def linear_model(reference_rows: int) -> ExplainableModel:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(
        {
            "duration_in_month": rng.integers(6, 60, 200).astype(float),
            "credit_amount": rng.normal(4000, 2000, 200),
            "age_in_years": rng.integers(19, 75, 200).astype(float),
        }
    )
    y = (
        0.04 * x.duration_in_month + 0.0003 * x.credit_amount - 0.03 * x.age_in_years + rng.normal(0, 1, 200)
    ) > 1
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y.astype(int))
    columns = tuple(Column(n, "float") for n in NAMES)
    return ExplainableModel("m", "1", columns, 0.5, pipeline, x.head(reference_rows).reset_index(drop=True))


def instance() -> dict[str, float | int | str | bool | None]:
    return {"duration_in_month": 48.0, "credit_amount": 9000.0, "age_in_years": 23.0}


def by_name(contributions: list[Contribution]) -> dict[str, float]:
    return {c.feature: c.contribution for c in contributions}


def test_shap_matches_the_analytic_contributions_of_a_linear_model() -> None:
    model = linear_model(reference_rows=1)
    background = model.reference.iloc[0]
    scaler, clf = model.pipeline.named_steps["scale"], model.pipeline.named_steps["clf"]
    x = instance()
    expected = {
        n: clf.coef_[0][j] * (float(x[n]) - background[n]) / scaler.scale_[j]  # type: ignore[arg-type]
        for j, n in enumerate(NAMES)
    }
    contributions, base, algorithm = OmniXaiEngine(5, 100, 200, 0, exact_linear=False).shap(model, x)
    assert algorithm == "kernel"
    assert by_name(contributions) == pytest.approx(expected, abs=1e-6)
    assert base == pytest.approx(logit(float(model.p_bad(model.reference)[0])), abs=1e-9)
    assert sum(expected.values()) + base == pytest.approx(logit(float(model.p_bad(model.frame([x]))[0])))


def exact_shapley(model: ExplainableModel, x: dict[str, float], background: pd.DataFrame) -> dict[str, float]:
    def value(coalition: tuple[str, ...]) -> float:
        frame = background.copy()
        for name in coalition:
            frame[name] = x[name]
        return logit(float(model.p_bad(frame).mean()))

    return shapley_values(NAMES, value)


def test_shap_matches_brute_force_shapley_values_over_a_small_background() -> None:
    model = linear_model(reference_rows=8)
    x = instance()
    expected = exact_shapley(model, x, model.reference[NAMES])  # type: ignore[arg-type]
    contributions, _, _ = OmniXaiEngine(8, 100, 200, 0, exact_linear=False).shap(model, x)
    assert by_name(contributions) == pytest.approx(expected, abs=1e-6)
    # and the attribution is not trivially zero: the test can tell right from wrong
    assert max(abs(v) for v in expected.values()) > 0.1
