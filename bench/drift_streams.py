"""The streams bench/drift_detection.py scores: Agrawal concepts back to back (cached), the German
credit replay with a known change, and the error streams of a Hoeffding tree over them (prequential,
or trained on pre-drift rows and then frozen, as served)."""

from __future__ import annotations

import itertools
import pickle
import random
from pathlib import Path
from typing import Any

from river import tree
from river.datasets import synth

from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".local" / "bench" / "drift"

Row = tuple[dict[Any, Any], Any]


def agrawal(functions: tuple[int, ...], seed: int, segment: int) -> list[Row]:
    """Concepts back to back, exactly `segment` rows each (cached)."""
    path = CACHE / f"agrawal-{'-'.join(map(str, functions))}-{seed}-{segment}.pkl"
    if path.exists():
        rows: list[Row] = pickle.loads(path.read_bytes())
        return rows
    rows = []
    for k, function in enumerate(functions):
        stream = synth.Agrawal(classification_function=function, seed=seed * 100 + k)
        rows += list(itertools.islice(stream, segment))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(rows))
    return rows


def prequential_errors(rows: list[Row]) -> list[float]:
    model = tree.HoeffdingTreeClassifier()
    errors = []
    for x, y in rows:
        errors.append(float(model.predict_one(x) != y))
        model.learn_one(x, y)
    return errors


def replay(n: int, seed: int, kind: str = "none", at: int = 0) -> list[Row]:
    from workbench.demo_data import german_credit

    rows = german_credit()
    rng = random.Random(seed)
    out: list[Row] = []
    while len(out) < n:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in order[: n - len(out)]:
            row = rows[i]
            record = {f: row[f] for f in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)}
            label = str(row["creditability"])
            if len(out) >= at and kind == "covariate":
                record["credit_amount"] = record["credit_amount"] * 1.8
            if len(out) >= at and kind == "label_flip" and record["foreign_worker"] == "yes":
                label = ("bad" if label == "good" else "good") if rng.random() < 0.5 else label
            out.append((record, label))
    return out


def frozen_errors(seed: int, stream: list[Row]) -> list[float]:
    model = tree.HoeffdingTreeClassifier()
    for record, label in replay(3000, seed + 1000):
        model.learn_one(record, label)
    return [float(model.predict_one(r) != y) for r, y in stream]
