"""Training set assembly, pure: labels joined to what the feature store returned, rows it dropped
detected, the time split, the sensitive groups and the dataset's hash.

The Feast file offline store leaves out an entity row whose entity has feature rows but none valid at
the row's timestamp (FACTS.md, feast-dev/feast#6787), instead of returning nulls: `assemble` joins the
store's answer back to the labels it was asked about and reports those entities as
`dropped_by_store`, and entities returned without features as `without_features`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from feature_repo.names import (
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    EVENT_TIME,
    FEATURES,
    FLOAT_FEATURES,
    NUMERIC_FEATURES,
)

LABEL = "label"  # 1 = bad (the positive class), 0 = good
LABEL_TIME = "event_timestamp"  # Feast's name for the entity dataframe's timestamp
POSITIVE_CLASS, NEGATIVE_CLASS = "bad", "good"


def label_value(label: object) -> int | None:
    """ "bad" -> 1, "good" -> 0 (case and spaces ignored); anything else -> None."""
    text = label.strip().lower() if isinstance(label, str) else None
    return {POSITIVE_CLASS: 1, NEGATIVE_CLASS: 0}.get(text or "")


@dataclass(frozen=True)
class Window:
    """Which labelled examples a run learns from, by when their LABEL was observed, [start, end).

    The label's clock, not the application's: the drift service's change points are on it (its
    error stream advances as labels arrive), so "since the change" means "labelled since the change".
    With labels that come 30 days late, an application-time window starting at that change point
    would exclude every drifted application whose label is in.
    """

    start: datetime | None = None
    end: datetime | None = None


@dataclass
class Assembled:
    frame: pd.DataFrame  # ENTITY_KEY, EVENT_TIME, LABEL_TIME, FEATURES..., LABEL; one row per entity
    requested: int
    dropped_by_store: list[str] = field(default_factory=list)
    without_features: list[str] = field(default_factory=list)
    outside_window: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "labels_requested": self.requested,
            "rows_dropped_by_store": len(self.dropped_by_store),
            "rows_without_features": len(self.without_features),
            "rows_outside_window": self.outside_window,
            "rows_usable": len(self.frame),
        }


def entity_frame(labels: pd.DataFrame) -> pd.DataFrame:
    """What the feature store is asked for: one row per labelled entity at its label's time."""
    return pd.DataFrame(
        {ENTITY_KEY: labels[ENTITY_KEY].astype(str), LABEL_TIME: pd.to_datetime(labels[LABEL_TIME], utc=True)}
    )


def assemble(labels: pd.DataFrame, retrieved: pd.DataFrame, window: Window | None = None) -> Assembled:
    """`labels`: ENTITY_KEY, LABEL_TIME, LABEL. `retrieved`: the store's rows (with EVENT_TIME)."""
    store_rows = retrieved.drop(columns=[LABEL_TIME], errors="ignore").drop_duplicates(ENTITY_KEY)
    joined = labels.merge(store_rows, on=ENTITY_KEY, how="left", indicator=True)
    dropped = joined[ENTITY_KEY][joined["_merge"] == "left_only"].tolist()
    present = joined[joined["_merge"] == "both"].drop(columns="_merge")
    incomplete = present[list(FEATURES)].isna().any(axis=1) | present[EVENT_TIME].isna()
    result = Assembled(
        typed(present[~incomplete]), len(labels), dropped, present[ENTITY_KEY][incomplete].tolist()
    )
    if window is not None:
        times = pd.to_datetime(result.frame[LABEL_TIME], utc=True)
        inside = pd.Series(True, index=result.frame.index)
        if window.start is not None:
            inside &= times >= pd.Timestamp(window.start)
        if window.end is not None:
            inside &= times < pd.Timestamp(window.end)
        result.outside_window = int((~inside).sum())
        result.frame = result.frame[inside]
    result.frame = result.frame.sort_values([EVENT_TIME, ENTITY_KEY]).reset_index(drop=True)
    return result


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The model contract's dtypes: int64 / float64 numerics, str categoricals, UTC times."""
    out = frame.copy()
    for name in NUMERIC_FEATURES:
        out[name] = out[name].astype("float64" if name in FLOAT_FEATURES else "int64")
    for name in CATEGORICAL_FEATURES:
        out[name] = out[name].astype(str)
    out[EVENT_TIME] = pd.to_datetime(out[EVENT_TIME], utc=True)
    out[LABEL] = out[LABEL].astype("int64")
    return out


def time_split(frame: pd.DataFrame, holdout_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest rows train, the newest `holdout_share` (by EVENT_TIME, at least one row) are held out."""
    ordered = frame.sort_values([EVENT_TIME, ENTITY_KEY]).reset_index(drop=True)
    held = min(len(ordered) - 1, max(1, round(len(ordered) * holdout_share)))
    return ordered.iloc[: len(ordered) - held], ordered.iloc[len(ordered) - held :]


def sex_of(personal_status_and_sex: pd.Series) -> np.ndarray:
    """ "male : single" -> "male", "female : ..." -> "female", anything else -> "unknown"."""
    prefix = personal_status_and_sex.astype(str).str.split(":").str[0].str.strip().str.lower()
    return np.where(prefix.isin(["male", "female"]), prefix, "unknown")


def age_band(age_in_years: pd.Series, edges: tuple[int, int]) -> np.ndarray:
    """Bands `under_{a}` (< a), `{a}_{b-1}` (a..b-1), `over_{b-1}` (>= b); edges (25, 41) by default."""
    low, high = edges
    ages = age_in_years.to_numpy()
    names = np.array([f"under_{low}", f"{low}_{high - 1}", f"over_{high - 1}"])
    return names[np.digitize(ages, [low, high])]


def dataset_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of the training set's canonical CSV (fixed columns, rows by entity, ISO times)."""
    columns = [ENTITY_KEY, EVENT_TIME, *FEATURES, LABEL]
    canonical = frame[columns].sort_values(ENTITY_KEY).copy()
    canonical[EVENT_TIME] = canonical[EVENT_TIME].map(lambda t: t.isoformat())
    text = canonical.to_csv(index=False, lineterminator="\n", float_format="%.17g")
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_version(frame: pd.DataFrame, sha256: str) -> str:
    newest = pd.Timestamp(frame[EVENT_TIME].max()).strftime("%Y%m%dT%H%M%SZ")
    return f"{newest}-{len(frame)}rows-{sha256[:12]}"
