"""A small, honest counterfactual search: the fewest, smallest feature changes that flip the decision.

Candidates come from the reference sample (deciles of each numeric feature, every observed category),
so a counterfactual never proposes a value no applicant had. Round 1 tries every single change; if
none flips the decision, the change that moves the score most towards the threshold is kept and the
search goes on, up to `max_changes` features. Cost of a change: |delta| / IQR for numbers, 1 for a
category. It is a greedy search, not an optimisation: a flip it finds is real (the model was asked),
but a smaller one may exist. OmniXAI's MACE is not used (see docs/explain.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from services.explain.domain.model import Column, Counterfactual, Scalar


def search(
    p_bad: Callable[[pd.DataFrame], np.ndarray],
    columns: tuple[Column, ...],
    instance: dict[str, Scalar],
    reference: pd.DataFrame,
    threshold: float,
    max_changes: int = 3,
) -> Counterfactual | None:
    candidates = _candidates(columns, instance, reference)
    start = float(p_bad(pd.DataFrame([instance]))[0])
    wants_bad = start < threshold  # the flip: approve -> decline, or decline -> approve
    current, changes, evaluated = dict(instance), {}, 1
    for _ in range(max_changes):
        trials = [(name, value, cost) for name, value, cost in candidates if name not in changes]
        if not trials:
            return None
        frame = pd.DataFrame([{**current, name: value} for name, value, _ in trials])
        scores = p_bad(frame)
        evaluated += len(trials)
        flipped = [
            (cost, i) for i, (_, _, cost) in enumerate(trials) if (scores[i] >= threshold) == wants_bad
        ]
        if flipped:
            _, best = min(flipped)
            name, value, _ = trials[best]
            changes[name] = (instance[name], value)
            current[name] = value
            decision = "decline" if scores[best] >= threshold else "approve"
            return Counterfactual(changes, float(scores[best]), decision, evaluated)
        toward = scores if wants_bad else -scores
        best = int(np.argmax(toward))
        name, value, _ = trials[best]
        changes[name] = (instance[name], value)
        current[name] = value
    return None


def _candidates(
    columns: tuple[Column, ...], instance: dict[str, Scalar], reference: pd.DataFrame
) -> list[tuple[str, Scalar, float]]:
    out: list[tuple[str, Scalar, float]] = []
    for column in columns:
        series = reference[column.name].dropna()
        if column.kind == "str":
            out += [
                (column.name, str(v), 1.0)
                for v in sorted(set(series.astype(str)))
                if v != instance[column.name]
            ]
            continue
        q1, q3 = np.quantile(series, [0.25, 0.75])
        spread = float(q3 - q1) or float(series.std() or 1.0)
        for q in np.unique(np.quantile(series, np.linspace(0, 1, 11))):
            value: Scalar = round(float(q)) if column.kind == "int" else float(q)
            if value != instance[column.name]:
                out.append((column.name, value, abs(float(q) - float(instance[column.name] or 0)) / spread))
    return out
