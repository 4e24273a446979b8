"""Exact linear SHAP (services/explain/domain/linear_shap.py) against independent computations.

- brute force: interventional Shapley values of the log-odds over every coalition of input features,
  v(S) = mean_b logodds(x_S, b_rest), on a pipeline with numbers and categories;
- the `shap` package's LinearExplainer on the transformed columns, summed per input feature;
- OmniXAI's Kernel SHAP (the fallback) on a one-row background, where the two games coincide;
- additivity on the full reference model, the fallback for a non-linear model or a pipeline whose
  column names lie, one-hot columns summed back to their feature, an unseen category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from services.explain.adapters.omnixai_engine import OmniXaiEngine
from services.explain.domain import linear_shap
from services.explain.domain.fidelity import shap_additivity
from services.explain.domain.model import Column, Contribution, ExplainableModel, Kind, Scalar, logit
from tests.unit.test_explain_support import reference_model, shapley_values
from workbench.serving_devdata import fit_reference_pipeline


def instance(model: ExplainableModel, index: int) -> dict[str, Scalar]:
    row = model.reference[model.feature_names].iloc[index]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def exact(model: ExplainableModel, rows: int) -> linear_shap.LinearShap:
    found = linear_shap.linear_shap(model.pipeline, model.feature_names, model.reference.head(rows))
    assert found is not None
    return found


def brute_force(model: ExplainableModel, x: dict[str, Scalar], background: pd.DataFrame) -> dict[str, float]:
    names = model.feature_names

    def value(coalition: tuple[str, ...]) -> float:
        frame = background[names].copy()
        for name in coalition:
            frame[name] = x[name]
        return float(np.mean(model.pipeline.decision_function(frame)))

    return shapley_values(names, value)


def test_exact_values_equal_brute_force_shapley_values_over_every_coalition() -> None:
    model = reference_model()  # 3 numbers (scaled) and 2 categories (one-hot)
    found = exact(model, rows=12)
    for index in (20, 21):
        x = instance(model, index)
        expected = brute_force(model, x, model.reference.head(12))
        assert found.contributions(model.frame([x])) == pytest.approx(expected, abs=1e-6)
        assert max(abs(v) for v in expected.values()) > 0.1  # not trivially zero


def test_exact_values_equal_the_shap_packages_linear_explainer() -> None:
    import shap

    model = reference_model()
    background = model.reference[model.feature_names].head(30)
    found = exact(model, rows=30)
    prep, clf = model.pipeline.named_steps["prep"], model.pipeline.named_steps["clf"]
    masker = shap.maskers.Independent(_dense(prep.transform(background)), max_samples=30)
    explainer = shap.LinearExplainer((clf.coef_[0], clf.intercept_[0]), masker)
    sources = [_input_of(name, model.feature_names) for name in prep.get_feature_names_out()]
    x = instance(model, 40)
    per_column = explainer.shap_values(_dense(prep.transform(model.frame([x]))))[0]
    expected = {n: sum(v for v, s in zip(per_column, sources, strict=True) if s == n) for n in sources}
    assert found.contributions(model.frame([x])) == pytest.approx(expected, abs=1e-6)
    assert found.base_value == pytest.approx(float(explainer.expected_value), abs=1e-6)


def test_exact_and_kernel_shap_agree_on_a_one_row_background() -> None:
    """With one background row, logit(mean P) = mean logit(P): both algorithms play the same game.

    The instance shares the background row's categories: OmniXAI encodes categories it saw in the
    background only, and misreads any other (its additivity then fails; the exact path has no such
    limit, see test_an_unseen_category_is_explained_without_error)."""
    model = fresh(reference_model())
    row = OmniXaiEngine(1, 200, 200, 0).background(model).iloc[0]
    same = (model.reference[model.categorical] == row[model.categorical]).all(axis=1)
    differs = model.reference[model.feature_names].ne(row[model.feature_names]).sum(axis=1) >= 3
    x = instance(model, int(np.flatnonzero(same & differs)[0]))
    exact_values, exact_base, algorithm = OmniXaiEngine(1, 200, 200, 0).shap(model, x)
    kernel_values, kernel_base, fallback = OmniXaiEngine(1, 200, 200, 0, exact_linear=False).shap(model, x)
    assert (algorithm, fallback) == ("exact_linear", "kernel")
    assert by_name(exact_values) == pytest.approx(by_name(kernel_values), abs=1e-6)
    assert exact_base == pytest.approx(kernel_base, abs=1e-6)
    assert max(abs(c.contribution) for c in exact_values) > 0.1  # not trivially zero


def test_additivity_holds_to_1e_9_on_the_reference_model() -> None:
    pipeline, x = fit_reference_pipeline()  # every feature, as training registers it
    model = ExplainableModel("credit-risk", "1", columns_of(x), 0.5, pipeline, x)
    engine = OmniXaiEngine(50, 500, 1000, 0)
    for index in (0, 7, 300, 999):
        row = instance(model, index)
        contributions, base, algorithm = engine.shap(model, row)
        assert algorithm == "exact_linear"
        assert [c.feature for c in contributions] == model.feature_names
        output = logit(float(model.p_bad(model.frame([row]))[0]))
        check = shap_additivity([c.contribution for c in contributions], base, output, 1e-9)
        assert check["shap_additive"] is True, check


def test_a_random_forest_goes_through_kernel_shap() -> None:
    base = reference_model()
    forest = Pipeline(
        [
            ("prep", clone(base.pipeline.named_steps["prep"])),
            ("clf", RandomForestClassifier(20, random_state=0)),
        ]
    ).fit(base.reference[base.feature_names], base.reference["label"])
    model = ExplainableModel("m", "1", base.columns, 0.5, forest, base.reference)
    assert linear_shap.linear_shap(forest, model.feature_names, model.reference.head(20)) is None
    engine = OmniXaiEngine(30, 300, 200, 0)
    background = engine.background(model)
    seen = model.reference[model.categorical].isin(background[model.categorical].to_dict("list")).all(axis=1)
    x = instance(model, int(np.flatnonzero(seen & ~model.reference.index.isin(background.index))[0]))
    contributions, base_value, algorithm = engine.shap(model, x)
    assert algorithm == "kernel"
    output = logit(float(model.p_bad(model.frame([x]))[0]))
    assert sum(c.contribution for c in contributions) + base_value == pytest.approx(output, abs=1e-6)


def test_columns_whose_names_lie_are_caught_and_fall_back() -> None:
    """A transformer declared one-to-one that mixes columns: the names map, the probe refuses."""
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    y = (x.a + x.b > 0).astype(int)
    mixing = FunctionTransformer(lambda m: m + np.roll(m, 1, axis=1), feature_names_out="one-to-one")
    honest = FunctionTransformer(lambda m: 2 * m, feature_names_out="one-to-one")
    for transformer, linear in ((mixing, False), (honest, True)):
        pipeline = Pipeline([("t", transformer), ("clf", LogisticRegression())]).fit(x, y)
        found = linear_shap.linear_shap(pipeline, ["a", "b", "c"], x.head(20))
        assert (found is not None) is linear


def test_one_hot_columns_are_summed_back_to_their_feature() -> None:
    model = reference_model()
    found = exact(model, rows=25)
    prep, clf = model.pipeline.named_steps["prep"], model.pipeline.named_steps["clf"]
    names = list(prep.get_feature_names_out())
    purpose = [i for i, n in enumerate(names) if n.startswith("cat__purpose_")]
    assert len(purpose) > 2  # several one-hot columns make one feature
    z, mean = _dense(prep.transform(model.frame([instance(model, 60)]))), found.background_mean
    expected = sum(clf.coef_[0][i] * (z[0][i] - mean[i]) for i in purpose)
    contributions = found.contributions(model.frame([instance(model, 60)]))
    assert set(contributions) == set(model.feature_names)  # input features, never encoded columns
    assert contributions["purpose"] == pytest.approx(expected, abs=1e-12)


def test_an_unseen_category_is_explained_without_error() -> None:
    model = fresh(reference_model())
    x = {**instance(model, 70), "purpose": "spaceship"}  # handle_unknown="ignore": all zeros
    contributions, base, algorithm = OmniXaiEngine(50, 500, 1000, 0).shap(model, x)
    found = by_name(contributions)
    prep, clf = model.pipeline.named_steps["prep"], model.pipeline.named_steps["clf"]
    background = _dense(prep.transform(OmniXaiEngine(50, 500, 1000, 0).background(model)))
    purpose = [i for i, n in enumerate(prep.get_feature_names_out()) if n.startswith("cat__purpose_")]
    assert algorithm == "exact_linear"
    assert found["purpose"] == pytest.approx(-sum(clf.coef_[0][i] * background[:, i].mean() for i in purpose))
    output = logit(float(model.p_bad(model.frame([x]))[0]))
    assert sum(found.values()) + base == pytest.approx(output, abs=1e-9)


def fresh(model: ExplainableModel) -> ExplainableModel:
    """The same model with an empty explainer cache."""
    return ExplainableModel(
        model.name, model.version, model.columns, model.threshold, model.pipeline, model.reference
    )


def columns_of(x: pd.DataFrame) -> tuple[Column, ...]:
    kinds: dict[str, Kind] = {"O": "str", "f": "float", "i": "int"}
    return tuple(Column(c, kinds[x[c].dtype.kind]) for c in x.columns)


def by_name(contributions: list[Contribution]) -> dict[str, float]:
    return {c.feature: c.contribution for c in contributions}


def _input_of(encoded: str, inputs: list[str]) -> str:
    bare = encoded.split("__", 1)[1]
    return next(n for n in inputs if bare == n or bare.startswith(f"{n}_"))


def _dense(matrix: object) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)
