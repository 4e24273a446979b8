"""Turn feature rows into scores (P(bad)) with a fitted scikit-learn pipeline.

`SklearnScorer` works for any pipeline with `predict_proba`, but scikit-learn spends about 2-4 ms of
input validation on a one-row call (ColumnTransformer, OneHotEncoder). `compile_linear` turns the
common linear case (StandardScaler / OneHotEncoder / passthrough columns feeding a binary
LogisticRegression) into a few dozen float operations in pure Python, and `verified` checks, at load
time, that it agrees with the pipeline on rows that visit every category and move every numeric
input (the logit is affine in the encoded inputs, so such rows catch a wrong weight or offset).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from contracts.common import Scalar
from contracts.model import Column

Row = Mapping[str, Scalar]


class Scorer(Protocol):
    @property
    def kind(self) -> str:
        """'linear' (compiled) or 'sklearn'."""
        ...

    def score(self, rows: Sequence[Row]) -> list[float]:
        """P(positive class) per row; raises ValueError for values the model cannot score."""
        ...


_DTYPES: dict[str, Any] = {"int": "int64", "float": "float64", "str": object}


class SklearnScorer:
    kind = "sklearn"

    def __init__(self, pipeline: Any, columns: Sequence[Column]) -> None:
        self.pipeline = pipeline
        self.columns = tuple(columns)
        self._dtypes: dict[str, Any] = {c.name: _DTYPES[c.kind] for c in columns}

    def score(self, rows: Sequence[Row]) -> list[float]:
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame(
            {name: np.array([row[name] for row in rows], dtype=dtype) for name, dtype in self._dtypes.items()}
        )
        return [float(p) for p in self.pipeline.predict_proba(frame)[:, 1]]


@dataclass(frozen=True)
class LinearScorer:
    """logit = intercept + sum of numeric terms w * (x - mean) / scale + one weight per category."""

    intercept: float
    numeric: tuple[tuple[str, float, float, float], ...]  # (column, weight, mean, scale)
    categorical: tuple[tuple[str, dict[Any, float], bool], ...]  # (column, weight by value, unknown ok)
    kind: str = "linear"

    def score(self, rows: Sequence[Row]) -> list[float]:
        return [self._one(row) for row in rows]

    def _one(self, row: Row) -> float:
        z = self.intercept
        for name, weight, mean, scale in self.numeric:
            z += weight * (row[name] - mean) / scale  # type: ignore[operator]
        for name, weights, unknown_ok in self.categorical:
            value = row[name]
            if value in weights:
                z += weights[value]
            elif not unknown_ok:
                raise ValueError(f"{name}: a category the model was not trained on")
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def compile_linear(pipeline: Any, columns: Sequence[Column]) -> LinearScorer | None:
    """A LinearScorer equivalent to `pipeline`, or None when its shape is not one handled here."""
    try:
        return _compile(pipeline, {c.name for c in columns})
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(pipeline: Any, names: set[str]) -> LinearScorer:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in pipeline.steps] if isinstance(pipeline, Pipeline) else [pipeline]
    steps = [s for s in steps if s not in (None, "passthrough")]
    clf = steps[-1]
    _require(isinstance(clf, LogisticRegression) and list(clf.classes_) == [0, 1])
    _require(clf.coef_.shape[0] == 1 and len(steps) == 2 and isinstance(steps[0], ColumnTransformer))
    weights = [float(w) for w in clf.coef_[0]]
    numeric: list[tuple[str, float, float, float]] = []
    categorical: list[tuple[str, dict[Any, float], bool]] = []
    offset = 0
    for _, transformer, cols in steps[0].transformers_:
        if transformer == "drop":
            continue
        _require(isinstance(cols, list) and all(isinstance(c, str) and c in names for c in cols))
        handler = _BLOCKS.get(type(transformer).__name__ if transformer != "passthrough" else "passthrough")
        _require(handler is not None)
        offset = handler(transformer, cols, weights, offset, numeric, categorical)  # type: ignore[misc]
    _require(offset == len(weights))
    return LinearScorer(float(clf.intercept_[0]), tuple(numeric), tuple(categorical))


def _scaler(t: Any, cols: list[str], w: list[float], at: int, numeric: list[Any], _: list[Any]) -> int:
    for i, name in enumerate(cols):
        mean = float(t.mean_[i]) if t.mean_ is not None else 0.0
        scale = float(t.scale_[i]) if t.scale_ is not None else 1.0
        numeric.append((name, w[at + i], mean, scale))
    return at + len(cols)


def _passthrough(_t: Any, cols: list[str], w: list[float], at: int, numeric: list[Any], _: list[Any]) -> int:
    numeric.extend((name, w[at + i], 0.0, 1.0) for i, name in enumerate(cols))
    return at + len(cols)


def _one_hot(t: Any, cols: list[str], w: list[float], at: int, _: list[Any], categorical: list[Any]) -> int:
    _require(t.drop_idx_ is None and not getattr(t, "_infrequent_enabled", False))
    _require(t.handle_unknown in ("ignore", "error"))
    for name, categories in zip(cols, t.categories_, strict=True):
        by_value = {_plain(v): w[at + j] for j, v in enumerate(categories)}
        categorical.append((name, by_value, t.handle_unknown == "ignore"))
        at += len(categories)
    return at


_BLOCKS: dict[str, Callable[..., int]] = {
    "StandardScaler": _scaler,
    "passthrough": _passthrough,
    "OneHotEncoder": _one_hot,
}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _require(condition: bool) -> None:
    if not condition:
        raise _Unsupported


def spanning_rows(scorer: LinearScorer, columns: Sequence[Column]) -> list[dict[str, Scalar]]:
    """Rows that visit every category and move every numeric input, to check a compiled scorer."""
    means = {name: mean for name, _, mean, _ in scorer.numeric}
    scales = {name: scale for name, _, _, scale in scorer.numeric}
    levels = {name: list(weights) for name, weights, _ in scorer.categorical}
    count = max([len(values) for values in levels.values()] + [len(columns) + 1, 3])
    rows: list[dict[str, Scalar]] = []
    for i in range(count):
        row: dict[str, Scalar] = {}
        for j, column in enumerate(columns):
            if levels.get(column.name):
                row[column.name] = levels[column.name][(i + j) % len(levels[column.name])]
            elif column.kind == "str":
                row[column.name] = ""
            else:
                value = means.get(column.name, 0.0) + ((i * 7 + j) % 5 - 2) * scales.get(column.name, 1.0)
                row[column.name] = round(value) if column.kind == "int" else value
        rows.append(row)
    return rows


def verified(
    compiled: LinearScorer, reference: Scorer, columns: Sequence[Column], tolerance: float = 1e-9
) -> bool:
    """True when the compiled scorer agrees with the reference on spanning rows."""
    rows = spanning_rows(compiled, columns)
    try:
        expected = reference.score(rows)
    except ValueError:
        return False
    return all(abs(a - b) <= tolerance for a, b in zip(compiled.score(rows), expected, strict=True))
