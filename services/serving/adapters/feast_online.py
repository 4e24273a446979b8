"""Online feature reads from the platform's Feast store (feature_repo), one call per request.

`import feast` costs seconds: the store is opened once, in a thread, at startup. Reads are SQLite
lookups of about half a millisecond and run on the event loop (no thread hop).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.common import Scalar
from feature_repo import ENTITY_KEY, FEATURE_VIEW

log = logging.getLogger(__name__)


class FeastOnlineFeatures:
    """Implements the handlers' `OnlineFeatures` port."""

    def __init__(self, repo_dir: Path, project: str, online_store_config: dict[str, Any]) -> None:
        self.repo_dir = repo_dir
        self.project = project
        self.online_store_config = online_store_config
        self._store: Any = None

    def open(self) -> None:
        """Blocking (imports feast): call in a thread."""
        from feature_repo.store import FeatureStoreSettings, open_store

        settings = FeatureStoreSettings(self.repo_dir, self.project, self.online_store_config)
        self._store = open_store(settings)
        log.info("feature store opened at %s (project %s)", self.repo_dir, self.project)

    @property
    def ready(self) -> bool:
        return self._store is not None

    def read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]:
        """Feature values per entity, in order; None for an entity the store does not know."""
        if self._store is None:
            raise RuntimeError("feature store not opened yet")
        response = self._store.get_online_features(
            features=[f"{FEATURE_VIEW}:{name}" for name in names],
            entity_rows=[{ENTITY_KEY: entity_id} for entity_id in entity_ids],
        ).to_dict()
        rows: list[dict[str, Scalar] | None] = []
        for i in range(len(entity_ids)):
            row = {name: response[name][i] for name in names}
            rows.append(None if all(value is None for value in row.values()) else row)
        return rows
