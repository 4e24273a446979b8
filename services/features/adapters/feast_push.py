"""The Feast side of the features service: open (and register) the store once, push one frame per batch."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from feature_repo import PUSH_SOURCE, FeatureStoreSettings, open_store
from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, EVENT_TIME, FEATURES
from feature_repo.store import offline_lock
from services.features.domain.rows import FeatureRow

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


class FeaturePusher(Protocol):
    """Port: write feature rows to the online and offline stores (blocking; called from a thread)."""

    def push(self, rows: list[FeatureRow]) -> None: ...


def rows_frame(rows: list[FeatureRow]) -> pd.DataFrame:
    """Rows as a frame with the offline file's column order and dtypes (ints stay int64)."""
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
        self._lock = threading.Lock()  # one push at a time: the offline Parquet file is rewritten

    def open(self) -> None:
        if self._store is None:
            self._store = open_store(self.settings, apply=True)
            log.info("feature store open at %s", self.settings.repo_dir)

    @property
    def ready(self) -> bool:
        return self._store is not None

    def push(self, rows: list[FeatureRow]) -> None:
        from feast.data_source import PushMode

        if self._store is None:
            raise RuntimeError("the feature store is not open yet")
        frame = rows_frame(rows)
        with self._lock:
            self._store.push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
            append_offline(self.settings.offline_path, frame)


def append_offline(path: Path, frame: pd.DataFrame) -> None:
    """Append rows to the offline store's Parquet file, safely for readers in other processes.

    Feast's file offline store appends by rewriting the file in place, so training's point-in-time
    retrieval could open it empty or half written ("Parquet file size is 0 bytes", seen in the
    closed-loop demo). Here the append holds the offline lock (readers hold it shared) and writes a
    temporary file renamed over the old one, so even a reader without the lock sees a whole file.
    Like Feast's, it rewrites the whole file per batch: the cost grows with the file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    with offline_lock(path, exclusive=True):
        previous = pq.read_table(path)
        if table.column_names != previous.column_names:
            raise ValueError(
                f"columns {table.column_names} differ from the offline file's {previous.column_names}"
            )
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(pa.concat_tables([table.cast(previous.schema), previous]), partial)
        os.replace(partial, path)
