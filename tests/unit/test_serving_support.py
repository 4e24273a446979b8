"""Fakes and a small real model shared by the serving unit tests (no MLflow, Feast or Kafka)."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.common import Scalar
from contracts.envelope import Event
from contracts.model import ModelCard
from servicekit.auth import Role, write_dev_keys
from services.serving.domain.model import Column, LoadedModel
from services.serving.domain.scoring import SklearnScorer, compile_linear
from services.serving.errors import ModelLoadError
from workbench.serving_devdata import entity_id, feature_rows, fit_reference_pipeline, reference_card

SMALL_FEATURES = ("duration_in_month", "credit_amount", "age_in_years", "purpose", "housing")


@functools.cache
def fitted(features: tuple[str, ...] | None = None, c: float = 1.0) -> tuple[Any, tuple[Column, ...]]:
    pipeline, x = fit_reference_pipeline(features, c)
    kinds = {"int64": "int", "float64": "float", "object": "str"}
    return pipeline, tuple(Column(name, kinds[str(x[name].dtype)]) for name in x.columns)  # type: ignore[arg-type]


@functools.cache
def card(features: tuple[str, ...] | None = None, threshold: float = 0.5) -> ModelCard:
    """The card training would log: its profile is the whole German credit data set."""
    _, x = fit_reference_pipeline(features)
    return reference_card(x, threshold)


def loaded(
    version: str = "1",
    features: tuple[str, ...] | None = None,
    *,
    c: float = 1.0,
    threshold: float = 0.5,
    compiled: bool = True,
    alias: str = "champion",
    profiled: bool = True,
) -> LoadedModel:
    """`profiled=False`: a legacy model, registered before model cards (no training profile)."""
    pipeline, columns = fitted(features, c)
    scorer = compile_linear(pipeline, columns) if compiled else None
    return LoadedModel(
        name="credit-risk",
        version=version,
        alias=alias,
        columns=columns,
        threshold=threshold,
        scorer=scorer or SklearnScorer(pipeline, columns),
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        card=card(features, threshold) if profiled else None,
    )


@functools.cache
def rows() -> dict[str, dict[str, Scalar]]:
    frame = feature_rows(50).drop(columns=["application_id", "applied_at"])
    return {entity_id(i): record for i, record in enumerate(frame.to_dict("records"))}


class FakeFeatures:
    """The online store as a dict; counts calls (one read per request)."""

    def __init__(self, data: Mapping[str, Mapping[str, Scalar]] | None = None) -> None:
        self.data = dict(data if data is not None else rows())
        self.calls = 0
        self.ready = True

    def read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]:
        self.calls += 1
        found = [self.data.get(e) for e in entity_ids]
        return [None if r is None else {n: r.get(n) for n in names} for r in found]


class FakeRegistry:
    """Aliases and versions in memory; a version listed in `broken` fails to load."""

    def __init__(self, models: Mapping[str, LoadedModel], aliases: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.aliases = dict(aliases)
        self.broken: set[str] = set()
        self.loads: list[str] = []

    def version_of(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def model_tag(self, key: str) -> str | None:
        return getattr(self, "tags", {}).get(key)

    def load(self, version: str, alias: str) -> LoadedModel:
        self.loads.append(version)
        if version in self.broken:
            raise ModelLoadError(f"version {version}: corrupted artifact")
        model = self.models[version]
        return dataclasses.replace(model, alias=alias)


class Published:
    """Stands in for Kafka: records (event, topic)."""

    def __init__(self) -> None:
        self.events: list[tuple[Event[Any], str]] = []
        self.fail = 0

    async def __call__(self, event: Event[Any], topic: str | None = None) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.events.append((event, topic or event.topic))


def api_keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    _, hashed = write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    return hashed, {v["role"]: v["key"] for v in plain.values()}
