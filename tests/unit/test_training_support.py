"""Builders and fakes shared by the training unit tests (not a test module of its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from contracts.events import LabelObserved, LabelObservedPayload
from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURES
from services.training.adapters.mlflow_registry import Candidate, Champion
from services.training.domain.dataset import LABEL, LABEL_TIME, label_value
from services.training.domain.model import ScoreFn
from workbench.demo_data import ApplicationStream

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def feature_frame(n: int, seed: int = 11) -> pd.DataFrame:
    """n applications as feature rows (one a minute from T0), with their true label in `_label`."""
    apps = ApplicationStream(seed=seed, id_prefix="t").take(n)
    rows = []
    for i, app in enumerate(apps):
        row = {ENTITY_KEY: app.record[ENTITY_KEY], EVENT_TIME: T0 + timedelta(minutes=i)}
        row |= {name: app.record[name] for name in FEATURES}
        row["_label"] = label_value(app.label)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["credit_amount"] = frame["credit_amount"].astype(float)
    return frame


def label_frame(features: pd.DataFrame, delay: timedelta = timedelta(seconds=30)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ENTITY_KEY: features[ENTITY_KEY],
            LABEL: features["_label"].astype("int64"),
            LABEL_TIME: features[EVENT_TIME] + delay,
        }
    )


class FakeSource:
    """Point-in-time join over an in-memory frame (latest feature row at or before the label time)."""

    def __init__(self, features: pd.DataFrame) -> None:
        self.features = features.drop(columns="_label")
        self.calls = 0

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        joined = entities.merge(self.features, on=ENTITY_KEY, how="left")
        valid = joined[EVENT_TIME].isna() | (joined[EVENT_TIME] <= joined[LABEL_TIME])
        return joined[valid]


@dataclass
class FakeRegistry:
    candidates: list[Candidate] = field(default_factory=list)
    gates: list[tuple[str, bool]] = field(default_factory=list)
    evidence: list[Any] = field(default_factory=list)
    alias: str | None = None
    champion_score: ScoreFn | None = None

    def champion(self) -> Champion | None:
        if self.alias is None or self.champion_score is None:
            return None
        return Champion(self.alias, f"run-{self.alias}", list(FEATURES), self.champion_score)

    def log_candidate(self, candidate: Candidate) -> tuple[str, str]:
        self.candidates.append(candidate)
        version = str(len(self.candidates))
        return f"run-{version}", version

    def record_gate(self, run_id: str, version: str, evidence: Any, metrics: dict[str, float]) -> None:
        self.gates.append((version, evidence.verdict == "promote"))
        self.evidence.append(evidence)

    others: dict[str, str] = field(default_factory=dict)  # aliases other than the champion
    tags: dict[str, str] = field(default_factory=dict)  # the registered model's tags

    def version_of(self, alias: str) -> str | None:
        return self.alias if alias == "champion" else self.others.get(alias)

    def delete_alias(self, alias: str) -> None:
        self.others.pop(alias, None)

    def model_tag(self, key: str) -> str | None:
        return self.tags.get(key)

    def set_model_tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def version_exists(self, version: str) -> bool:
        return version.isdigit() and 1 <= int(version) <= len(self.candidates)

    def set_alias(self, alias: str, version: str) -> None:
        if alias != "champion":
            self.others[alias] = version
            return
        self.promote(version)

    def promote(self, version: str) -> None:
        self.alias = version
        pipeline = self.candidates[int(version) - 1].pipeline
        inputs = self.candidates[int(version) - 1].inputs
        self.champion_score = lambda frame: np.asarray(pipeline.predict_proba(frame[inputs]))[:, 1]


def constant(p: float) -> ScoreFn:
    return lambda frame: np.full(len(frame), p)


def oracle(frame_with_labels: pd.DataFrame) -> Any:
    """A champion that knows the answers (nearly perfect scores): no candidate can beat it."""
    truth = frame_with_labels.set_index(ENTITY_KEY)["_label"]
    return lambda frame: truth.loc[frame[ENTITY_KEY]].to_numpy() * 0.9 + 0.05


def label_events(features: pd.DataFrame, delay: timedelta) -> list[LabelObserved]:
    """The labels of `feature_frame` rows as LabelObserved events, each `delay` after its application."""
    return [
        LabelObserved.create(
            LabelObservedPayload(
                dataset="loan_applications",
                entity_id=row["application_id"],
                label="bad" if row["_label"] else "good",
                event_time=row["applied_at"] + delay,
            ),
            producer="tests",
        )
        for row in features.to_dict("records")
    ]
