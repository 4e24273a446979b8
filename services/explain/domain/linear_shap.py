"""Exact SHAP values of a logistic model, in log-odds, in a millisecond instead of Kernel SHAP's seconds.

When the log-odds are affine in transformed features, f(x) = b + w · T(x), the interventional SHAP
value of transformed column k with respect to a background sample B is w_k (T(x)_k - mean_B T_k). An
input feature's contribution is the sum over the columns that depend on it alone (the one-hot columns
of a category, the scaled column of a number); the base value is b + w · mean_B T (the mean log-odds
of B). So base + sum(contributions) = f(x) exactly.

Kernel SHAP through OmniXAI (the fallback, services/explain/adapters/omnixai_engine.py) applies its
logit link to the mean probability instead: same background, same additivity, but its base value is
logit(mean_B P) rather than mean_B logit(P), so the two differ slightly on a many-row background and
coincide on a single row (tests/unit/test_explain_linear_shap.py).

`linear_shap` only accepts a pipeline it can verify: a binary classifier with `coef_`/`intercept_`
whose P(bad) equals sigmoid(b + w · T(x)) on the background, and transformed columns traced to one
input feature each (by `get_feature_names_out`, then checked by changing one feature at a time).
Anything else returns None and is explained by Kernel SHAP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Transform = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class LinearShap:
    """Everything an explanation needs, computed once per model version and background."""

    transform: Transform  # input frame -> dense transformed matrix
    weights: np.ndarray  # w, one per transformed column
    background_mean: np.ndarray  # mean_B T
    base_value: float  # b + w · mean_B T, in log-odds
    columns_of: dict[str, np.ndarray]  # input feature -> indices of the transformed columns it alone drives

    def contributions(self, row: pd.DataFrame) -> dict[str, float]:
        """Exact SHAP value of every input feature for a one-row frame, in log-odds."""
        per_column = self.weights * (self.transform(row)[0] - self.background_mean)
        return {name: float(per_column[idx].sum()) for name, idx in self.columns_of.items()}


def linear_shap(pipeline: Any, feature_names: Sequence[str], background: pd.DataFrame) -> LinearShap | None:
    """The exact explainer of `pipeline` on `background`, or None when the pipeline is not one we can
    verify to be logistic in column-wise transformed features."""
    names = list(feature_names)
    steps = getattr(pipeline, "steps", None)
    if not steps:
        return None
    classifier = steps[-1][1]
    coef = np.asarray(getattr(classifier, "coef_", np.empty((0, 0))), dtype=float)
    intercept = np.ravel(np.asarray(getattr(classifier, "intercept_", []), dtype=float))
    if coef.ndim != 2 or coef.shape[0] != 1 or intercept.shape != (1,):
        return None  # not linear, or one output per class
    if len(getattr(classifier, "classes_", ())) != 2 or not hasattr(classifier, "predict_proba"):
        return None
    transform, sources = _preprocessing(pipeline, names)
    if sources is None or len(sources) != coef.shape[1]:
        return None
    columns_of = {name: np.flatnonzero([s == name for s in sources]) for name in names}
    try:
        transformed = transform(background[names])
    except (ValueError, TypeError):
        return None
    weights = coef[0]
    log_odds = intercept[0] + transformed @ weights
    p_bad = np.asarray(pipeline.predict_proba(background[names]))[:, 1]
    # LogisticRegression's P is sigmoid(log-odds) when one-vs-rest; a binary multinomial fit uses
    # sigmoid(2 · log-odds) and other linear classifiers calibrate differently: checked, not assumed.
    if not np.allclose(p_bad, 1 / (1 + np.exp(-log_odds)), rtol=0, atol=1e-9):
        return None
    if not _each_column_follows_its_feature(transform, background[names], transformed, columns_of):
        return None
    mean = transformed.mean(axis=0)
    return LinearShap(transform, weights, mean, float(intercept[0] + weights @ mean), columns_of)


def _preprocessing(pipeline: Any, names: list[str]) -> tuple[Transform, list[str] | None]:
    """The transform before the classifier, and the input feature behind each column it outputs."""
    steps = [step for _, step in pipeline.steps[:-1] if step is not None and step != "passthrough"]
    if not steps:
        return (lambda frame: frame[names].to_numpy(dtype=float)), names
    preprocess = pipeline[:-1]

    def transform(frame: pd.DataFrame) -> np.ndarray:
        return _dense(preprocess.transform(frame[names]))

    return transform, _sources(steps[0] if len(steps) == 1 else preprocess, names)


def _sources(transformer: Any, inputs: list[str]) -> list[str] | None:
    if hasattr(transformer, "transformers_") and hasattr(transformer, "output_indices_"):
        return _column_transformer_sources(transformer)
    try:
        outputs = [str(n) for n in transformer.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        return None
    return _by_name(outputs, inputs)


def _column_transformer_sources(ct: Any) -> list[str] | None:
    """Each ColumnTransformer part writes a known slice of the output from known input columns."""
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    sources: list[str | None] = [None] * width
    for name, part, columns in ct.transformers_:
        out = ct.output_indices_.get(name, slice(0, 0))
        if part == "drop" or out.stop == out.start:
            continue
        inputs = _selected(ct, columns)
        if inputs is None:
            return None
        if len(inputs) == 1:  # one input column: all its outputs are its own
            part_sources: list[str] | None = inputs * (out.stop - out.start)
        elif part == "passthrough":
            part_sources = inputs
        else:
            part_sources = _sources(part, inputs)
        if part_sources is None or len(part_sources) != out.stop - out.start:
            return None
        sources[out] = part_sources
    if any(s is None for s in sources):
        return None
    return [str(s) for s in sources]


def _selected(ct: Any, columns: Any) -> list[str] | None:
    """The input feature names a ColumnTransformer part reads (None when it cannot be told)."""
    known = getattr(ct, "feature_names_in_", None)
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice) or (known is None and not _all_str(columns)):
        return None
    selector = np.asarray(columns)
    if selector.dtype.kind in "biu":  # boolean mask or positions
        return [str(n) for n in np.asarray(known, dtype=object)[selector]]
    return [str(c) for c in selector]


def _all_str(columns: Any) -> bool:
    return all(isinstance(c, str) for c in np.ravel(np.asarray(columns, dtype=object)))


def _by_name(outputs: list[str], inputs: list[str]) -> list[str] | None:
    """`age` -> `age`; `purpose_car` -> `purpose` (scikit-learn's one-hot naming). An output that
    could belong to two inputs (`age_group_x`: `age` or `age_group`) makes the mapping unknown."""
    sources = []
    for output in outputs:
        if output in inputs:
            sources.append(output)
            continue
        owners = [name for name in inputs if output.startswith(f"{name}_")]
        if len(owners) != 1:
            return None
        sources.append(owners[0])
    return sources


def _each_column_follows_its_feature(
    transform: Transform, background: pd.DataFrame, transformed: np.ndarray, columns_of: dict[str, np.ndarray]
) -> bool:
    """Names can lie (a FunctionTransformer declared one-to-one that mixes columns): change one
    feature at a time (the background rolled by one row) and require only its own columns to move."""
    probes = []
    for name in columns_of:
        probe = background.copy()
        probe[name] = np.roll(background[name].to_numpy(), 1)
        probes.append(probe)
    moved = transform(pd.concat(probes, ignore_index=True)).reshape(len(probes), *transformed.shape)
    changed = ~np.isclose(moved, transformed[None], rtol=0, atol=1e-12)  # (feature, row, column)
    for i, idx in enumerate(columns_of.values()):
        elsewhere = np.delete(changed[i].any(axis=0), idx)
        if elsewhere.any():
            return False
    return True


def _dense(matrix: Any) -> np.ndarray:
    dense = matrix.toarray() if hasattr(matrix, "toarray") else matrix
    return np.asarray(dense, dtype=float)
