"""Point-in-time training rows from Feast's offline store.

`get_historical_features` returns, per entity row, the latest feature values at or before the row's
timestamp, but not the time of those values. The time split needs it (applied_at), so the same rule is
applied to the offline store's (entity, applied_at) pairs with `merge_asof`: the timestamp of the
feature row Feast joined. Blocking calls: the service runs them in a worker thread.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from feature_repo import FEATURE_VIEW, FeatureStoreSettings, feature_refs, open_store
from feature_repo.names import ENTITY_KEY, EVENT_TIME
from feature_repo.store import offline_lock
from services.training.domain.dataset import LABEL_TIME

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


class TrainingSource(Protocol):
    """Port: feature rows for (entity, timestamp) pairs, with EVENT_TIME = the joined row's time."""

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame: ...


class FeastTrainingSource:
    def __init__(self, settings: FeatureStoreSettings) -> None:
        self.settings = settings
        self._store: FeatureStore | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open without applying: the features service registers the definitions."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            self.open()
        assert self._store is not None
        return self._store

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        store = self.store
        store.refresh_registry()  # the features service may have applied the definitions after we opened
        # Shared: no merge deletes a part under the two reads. Appends go on (they only add parts), so
        # `times` may hold rows newer than the ones Feast joined: an entity whose first row landed in
        # between has no features and is dropped as incomplete; one whose second row (a correction
        # dated before its label) did is timed by that row. Rare (a row per application), and harmless
        # to the point-in-time values themselves.
        with offline_lock(self.settings.offline_path, exclusive=False):
            rows = store.get_historical_features(entity_df=entities, features=feature_refs()).to_df()
            times = self.feature_times()
        rows[LABEL_TIME] = pd.to_datetime(rows[LABEL_TIME], utc=True)
        return with_feature_time(rows, times)

    def feature_times(self) -> pd.DataFrame:
        """(entity, applied_at) of every row in the offline store."""
        from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

        store = self.store
        view = store.get_feature_view(FEATURE_VIEW)
        offline = get_offline_store_from_config(store.config.offline_store)
        assert view.batch_source is not None, "the feature view has a batch source"
        job = offline.pull_all_from_table_or_query(
            config=store.config,
            data_source=view.batch_source,
            join_key_columns=[ENTITY_KEY],
            feature_name_columns=[],
            timestamp_field=EVENT_TIME,
        )
        times = job.to_df()[[ENTITY_KEY, EVENT_TIME]]
        times[EVENT_TIME] = pd.to_datetime(times[EVENT_TIME], utc=True)
        return times


def with_feature_time(rows: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """Add EVENT_TIME: for each (entity, LABEL_TIME), the latest feature time at or before it."""
    if rows.empty:
        return rows.assign(**{EVENT_TIME: pd.Series(dtype="datetime64[ns, UTC]")})
    left = rows.assign(_t=rows[LABEL_TIME].astype("datetime64[ns, UTC]")).sort_values("_t")
    right = times.assign(_t=times[EVENT_TIME].astype("datetime64[ns, UTC]")).sort_values("_t")
    merged = pd.merge_asof(left, right[[ENTITY_KEY, "_t", EVENT_TIME]], on="_t", by=ENTITY_KEY)
    return merged.drop(columns="_t")
