"""Fakes for the explain tests: an in-memory registry holding reference models, captured events."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contracts.envelope import Event
from services.explain.domain.model import Column, ExplainableModel, Kind
from services.explain.errors import ModelVersionGone, NoChampion
from workbench.serving_devdata import fit_reference_pipeline, germancredit

SMALL = ("duration_in_month", "credit_amount", "age_in_years", "purpose", "housing")


@functools.cache
def reference_model(version: str = "7", features: tuple[str, ...] = SMALL) -> ExplainableModel:
    pipeline, x = fit_reference_pipeline(features)
    kinds: dict[str, Kind] = {"O": "str", "f": "float", "i": "int"}
    columns = tuple(Column(c, kinds[x[c].dtype.kind]) for c in features)
    reference = x.head(200).copy()
    reference["label"] = (germancredit()["creditability"].head(200) == "bad").astype(int)
    return ExplainableModel(
        "credit-risk", version, columns, 0.5, pipeline, reference, run_id="run-" + version
    )


class FakeModels:
    def __init__(self, models: dict[str, ExplainableModel], champion: str | None) -> None:
        self.models, self.champion = models, champion
        self.globals: dict[str, str] = {}
        self.logged: dict[str, list[str]] = {}

    def get(self, version: str) -> ExplainableModel:
        if version not in self.models:
            raise ModelVersionGone(f"model credit-risk version {version} is no longer in the registry")
        return self.models[version]

    def champion_version(self) -> str:
        if self.champion is None:
            raise NoChampion("no champion yet")
        return self.champion

    def log_global(self, model: ExplainableModel, folder: Path, summary: str) -> str:
        self.logged[model.version] = sorted(p.name for p in folder.iterdir())
        uri = f"runs:/{model.run_id}/explanations/global-v{model.version}"
        self.globals[model.version] = uri
        return uri

    def global_uri(self, version: str) -> str | None:
        return self.globals.get(version)


class Published(list[tuple[Event[Any], str]]):
    async def __call__(self, event: Event[Any], topic: str) -> None:
        self.append((event, topic))


def shapley_values(names: Sequence[str], value: Callable[[tuple[str, ...]], float]) -> dict[str, float]:
    """Exact Shapley values by brute force over every coalition (a handful of features only):
    phi_i = sum over S without i of |S|! (n - |S| - 1)! / n! (v(S + i) - v(S))."""
    n, phi = len(names), {}
    for name in names:
        others = [o for o in names if o != name]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                total += weight * (value((*subset, name)) - value(subset))
        phi[name] = total
    return phi
