"""The Feast side of the features service: open (and register) the store once, push one frame per batch."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from feature_repo import FeatureStoreSettings, offline, open_store
from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, EVENT_TIME, FEATURES
from services.features.adapters.online_rows import OnlineRows
from services.features.domain.rows import FeatureRow

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


class FeaturePusher(Protocol):
    """Port: write feature rows to the online and offline stores (blocking; called from a thread)."""

    def push(self, rows: list[FeatureRow]) -> None: ...


def rows_frame(rows: list[FeatureRow]) -> pd.DataFrame:
    """Rows as a frame with the offline store's column order and dtypes (ints stay int64)."""
    frame = pd.DataFrame(rows, columns=[ENTITY_KEY, EVENT_TIME, *FEATURES])
    frame[EVENT_TIME] = pd.to_datetime(frame[EVENT_TIME], utc=True)
    for name in CATEGORICAL_FEATURES:
        frame[name] = frame[name].astype(object)
    return frame


class FeastPusher:
    """Opens the store with `apply=True`: the features service owns registration of the definitions."""

    def __init__(self, settings: FeatureStoreSettings) -> None:
        self.settings = settings
        self._store: FeatureStore | None = None
        self._online: OnlineRows | None = None
        self._lock = threading.Lock()  # one push at a time: the online store gets batches in order

    def open(self) -> None:
        if self._store is None:
            self._store = open_store(self.settings, apply=True)
            self._online = OnlineRows(self._store)
            log.info("feature store open at %s", self.settings.repo_dir)

    @property
    def ready(self) -> bool:
        return self._store is not None

    def push(self, rows: list[FeatureRow]) -> None:
        if self._online is None:
            raise RuntimeError("the feature store is not open yet")
        with self._lock:
            self._online.write(rows)  # what FeatureStore.push writes online, without its frame
            append_offline(self.settings.offline_path, rows_frame(rows))


def append_offline(path: Path, frame: pd.DataFrame) -> None:
    """Append rows to the offline store (`path`: its directory of Parquet parts) as one new part.

    Feast's file offline store appends by rewriting its one file in place, which let training read it
    empty or half written, and costs O(store) per batch. Here a batch is one new part, written under
    a hidden name and renamed into place, so its cost is the batch's, several processes may append at
    once, and readers (who hold the offline lock shared) see a part whole or not at all. Parts merge
    in tiers so their number stays bounded (feature_repo.offline).
    """
    import pyarrow as pa

    offline.append(path, pa.Table.from_pandas(frame, preserve_index=False))
