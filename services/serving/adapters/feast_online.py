"""Online feature reads from the platform's Feast store (feature_repo), one call per request.

`import feast` costs seconds: the store is opened once, in a thread, at startup. Reads run on the
event loop (no thread hop). On the plain SQLite store they skip Feast's generic serving path
(adapters/sqlite_read.py: 77 against 293 us of CPU per read, bench/serving_feature_read.py), once a
check has found both paths answering alike for the entities stored: at open, or at a later read if
the features service had not registered the view yet. Elsewhere (Redis) Feast reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.common import Scalar
from feature_repo import ENTITY_KEY, FEATURE_VIEW
from services.serving.adapters.sqlite_read import SqliteRead

log = logging.getLogger(__name__)


class FeastOnlineFeatures:
    """Implements the handlers' `OnlineFeatures` port."""

    def __init__(self, repo_dir: Path, project: str, online_store_config: dict[str, Any]) -> None:
        self.repo_dir = repo_dir
        self.project = project
        self.online_store_config = online_store_config
        self._store: Any = None
        self._direct: SqliteRead | None = None
        self._decided = False  # whether reads go direct or through Feast, once the view exists
        self._next_try = 0.0

    def open(self) -> None:
        """Blocking (imports feast): call in a thread."""
        from feature_repo.store import FeatureStoreSettings, open_store

        settings = FeatureStoreSettings(self.repo_dir, self.project, self.online_store_config)
        self._store = open_store(settings)
        log.info("feature store opened at %s (project %s)", self.repo_dir, self.project)
        self._decide()

    def _decide(self, sample: int = 20) -> None:
        """Read direct if that reads what Feast reads for stored entities (and one unknown). Until the
        features service has registered the view and made its table, Feast reads; tried again 5 s on."""
        if self._decided or time.monotonic() < self._next_try:
            return
        try:
            direct = SqliteRead.of(self._store, FEATURE_VIEW)
            if direct is not None:
                names = list(direct.feature_names)
                ids = [*direct.stored_ids(sample), "serving-open-check-unknown-entity"]
                if direct.read(ids, names) != self._feast_read(ids, names):
                    log.warning("the direct SQLite read differs from Feast's: reading through Feast")
                    direct = None
        except Exception as exc:  # no view or no table yet (serving started before features)
            self._next_try = time.monotonic() + 5.0
            log.info("online reads go through Feast until the view exists (%s)", type(exc).__name__)
            return
        self._direct, self._decided = direct, True
        log.info("online reads go %s", "direct to SQLite" if direct else "through Feast")

    @property
    def ready(self) -> bool:
        return self._store is not None

    def read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]:
        """Feature values per entity, in order; None for an entity the store does not know."""
        if self._store is None:
            raise RuntimeError("feature store not opened yet")
        if not self._decided:
            self._decide()
        if self._direct is not None:
            return self._direct.read(entity_ids, names)
        return self._feast_read(entity_ids, names)

    def _feast_read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]:
        response = self._store.get_online_features(
            features=[f"{FEATURE_VIEW}:{name}" for name in names],
            entity_rows=[{ENTITY_KEY: entity_id} for entity_id in entity_ids],
        ).to_dict()
        rows: list[dict[str, Scalar] | None] = []
        for i in range(len(entity_ids)):
            row = {name: response[name][i] for name in names}
            rows.append(None if all(value is None for value in row.values()) else row)
        return rows
