"""New loan applicants, drawn from a Gaussian copula per class fitted to the German credit rows.

Why: the demo used to replay the same 1000 rows, so a time-split holdout held rows the model had
trained on. A generator fitted once to those rows yields applicants nobody has seen, drawn from a
distribution close to the real one, so every scored row is out of sample.

The method, per class (good, bad), so that P(features | class) and the class prior are the data's:

1. Every column becomes a number. Numerics stay as they are; a categorical becomes the index of its
   level, with the levels ordered by their bad rate in the whole data, so the ordinal axis runs from
   safe to risky and the copula's (monotone) dependencies have a meaning.
2. Each column's values in the class become normal scores (mid-rank / (n + 1) -> inverse normal CDF);
   their correlation matrix, shrunk 5 % towards the identity so that it is positive definite, is the
   class's Gaussian copula.
3. To draw: z ~ N(0, R), u = Phi(z), and each column's value is its class's empirical quantile at u.
   Discrete columns (at most `CONTINUOUS_ABOVE` distinct values) take a value seen in the class, with
   the class's frequencies; continuous ones (credit_amount, age_in_years) interpolate between
   neighbouring order statistics and round to an integer, so they stay within the class's real range
   without copying its values.

Each class's marginals are kept exactly (discrete) or up to interpolation (continuous); what the
copula keeps of the joint is the rank correlation between columns within a class, which is what a
linear model of the label mostly relies on. Higher-order interactions are not kept.
bench/demo_data_fidelity.py measures both (docs/closed-loop.md, "The demo's data").

Fit once (about 10 ms), then `sampler(seed)`: draws are batched per class, so one applicant costs a
few microseconds. Deterministic for a seed; no global random state is touched.

>>> from workbench.demo_data import german_credit
>>> generator = ApplicantGenerator(german_credit())
>>> record, label = generator.sampler(seed=1).draw()
>>> label in ("good", "bad") and 19 <= record["age_in_years"] <= 75
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

CLASSES = ("good", "bad")
CONTINUOUS_ABOVE = 40  # distinct values above which a numeric column is interpolated, not resampled
SHRINKAGE = 0.05  # weight of the identity in each class's correlation matrix
BATCH = 256  # applicants drawn per class at a time


@dataclass(frozen=True)
class Column:
    """How one feature column is encoded: its name, its categorical levels (in code order), or none
    for a numeric column, and whether draws are interpolated between order statistics."""

    name: str
    levels: tuple[str, ...] | None
    continuous: bool

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        if self.levels is None:
            return np.asarray(values, dtype=float)
        index = {level: code for code, level in enumerate(self.levels)}
        return np.asarray([index[str(v)] for v in values], dtype=float)

    def decode(self, codes: np.ndarray) -> list[Any]:
        if self.levels is None:
            return [int(v) for v in np.rint(codes)]
        return [self.levels[int(c)] for c in np.rint(codes)]


@dataclass(frozen=True)
class ClassCopula:
    """One class's fit: each column's sorted codes (its empirical marginal) and the Cholesky factor
    of the normal-score correlation matrix."""

    sorted_codes: np.ndarray  # (rows of the class, columns), each column sorted
    cholesky: np.ndarray  # (columns, columns), lower triangular

    def draw(self, columns: Sequence[Column], n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, len(columns))) @ self.cholesky.T
        u = ndtr(z)
        rows = self.sorted_codes.shape[0]
        out = np.empty_like(u)
        for j, column in enumerate(columns):
            ordered = self.sorted_codes[:, j]
            if column.continuous:
                position = u[:, j] * (rows - 1)
                low = np.floor(position).astype(int)
                high = np.minimum(low + 1, rows - 1)
                weight = position - low
                out[:, j] = ordered[low] * (1 - weight) + ordered[high] * weight
            else:
                out[:, j] = ordered[np.minimum((u[:, j] * rows).astype(int), rows - 1)]
        return out


def normal_scores(codes: np.ndarray) -> np.ndarray:
    """Column-wise mid-ranks mapped through the inverse normal CDF (ties share one score)."""
    from scipy.stats import rankdata

    ranks = rankdata(codes, method="average", axis=0)
    return np.asarray(ndtri(ranks / (codes.shape[0] + 1)))


def fit_class(codes: np.ndarray) -> ClassCopula:
    scores = normal_scores(codes)
    spread = scores.std(axis=0) > 0
    correlation = np.eye(codes.shape[1])
    if spread.sum() > 1:  # a constant column in a class has no correlation to learn
        correlation[np.ix_(spread, spread)] = np.corrcoef(scores[:, spread], rowvar=False)
    correlation = (1 - SHRINKAGE) * correlation + SHRINKAGE * np.eye(codes.shape[1])
    return ClassCopula(np.sort(codes, axis=0), np.linalg.cholesky(correlation))


class ApplicantGenerator:
    """A Gaussian copula per class fitted to labelled rows (dicts of feature values plus the label).

    `rows` must hold both classes of `CLASSES` in `label_field`; every other key is a feature:
    str values are categorical, int or float values numeric (drawn back as int).
    """

    def __init__(self, rows: Sequence[dict[str, Any]], label_field: str = "creditability") -> None:
        labels = [str(r[label_field]) for r in rows]
        if set(labels) != set(CLASSES):
            raise ValueError(f"{label_field} must take exactly the values {CLASSES}")
        names = [k for k in rows[0] if k != label_field]
        is_bad = np.asarray([label == "bad" for label in labels])
        self.label_field = label_field
        self.bad_share = float(is_bad.mean())
        self.columns = tuple(column_of(name, [r[name] for r in rows], is_bad) for name in names)
        codes = np.column_stack([c.encode([r[c.name] for r in rows]) for c in self.columns])
        self.copulas = {label: fit_class(codes[is_bad == (label == "bad")]) for label in CLASSES}

    def sampler(self, seed: int) -> ApplicantSampler:
        return ApplicantSampler(self, seed)

    def draw_batch(self, label: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """`n` new applicants of class `label` (feature dicts, no label)."""
        codes = self.copulas[label].draw(self.columns, n, rng)
        values = [column.decode(codes[:, j]) for j, column in enumerate(self.columns)]
        names = [column.name for column in self.columns]
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def column_of(name: str, values: Sequence[Any], is_bad: np.ndarray) -> Column:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return Column(name, None, len(set(values)) > CONTINUOUS_ABOVE)
    text = np.asarray([str(v) for v in values])
    levels = sorted(set(text.tolist()), key=lambda level: (is_bad[text == level].mean(), level))
    return Column(name, tuple(levels), continuous=False)


class ApplicantSampler:
    """A seeded stream of new applicants from one `ApplicantGenerator`.

    The class of each draw comes from its own random stream (the fitted prior, unless the caller
    names the class), and each class has its own stream of features, so asking for a class, as a
    prior shift does, changes which applicants follow but nothing else's randomness.
    """

    def __init__(self, generator: ApplicantGenerator, seed: int) -> None:
        self.generator = generator
        prior, good, bad = np.random.SeedSequence(seed).spawn(3)
        self.prior_rng = np.random.default_rng(prior)
        self.class_rngs = {"good": np.random.default_rng(good), "bad": np.random.default_rng(bad)}
        self.buffers: dict[str, list[dict[str, Any]]] = {label: [] for label in CLASSES}
        self.priors: list[bool] = []

    def draw(self, label: str | None = None) -> tuple[dict[str, Any], str]:
        """One new applicant's features and its label; of class `label` when given."""
        if label is None:
            if not self.priors:
                self.priors = (self.prior_rng.random(BATCH) < self.generator.bad_share).tolist()[::-1]
            label = "bad" if self.priors.pop() else "good"
        elif label not in CLASSES:
            raise ValueError(f"label must be one of {CLASSES}")
        buffer = self.buffers[label]
        if not buffer:
            buffer.extend(reversed(self.generator.draw_batch(label, BATCH, self.class_rngs[label])))
        return buffer.pop(), label

    def take(self, n: int) -> list[tuple[dict[str, Any], str]]:
        return [self.draw() for _ in range(n)]
