"""Open the platform's feature store from settings (no feature_store.yaml to keep in sync).

Local default: SQLite online store and Parquet offline store under one folder. At scale, point
`online_store` at Redis or PostgreSQL through `online_store_config` (any Feast online store config).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # feast takes seconds to import: services import it lazily, once
    from feast import FeatureStore


@dataclass(frozen=True)
class FeatureStoreSettings:
    repo_dir: Path
    project: str = "mlops"
    online_store_config: dict[str, Any] = field(default_factory=dict)

    @property
    def offline_path(self) -> Path:
        return self.repo_dir / "offline" / "loan_applications.parquet"


def open_store(settings: FeatureStoreSettings, *, apply: bool = False) -> FeatureStore:
    """The store; `apply=True` registers the definitions (idempotent; the features service does it)."""
    from feast import FeatureStore, RepoConfig

    from feature_repo.definitions import definitions

    settings.repo_dir.mkdir(parents=True, exist_ok=True)
    settings.offline_path.parent.mkdir(parents=True, exist_ok=True)
    online = settings.online_store_config or {"type": "sqlite", "path": str(settings.repo_dir / "online.db")}
    config = RepoConfig(
        project=settings.project,
        registry=str(settings.repo_dir / "registry.db"),
        provider="local",
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=settings.repo_dir,
    )
    store = FeatureStore(config=config)
    if apply:
        _ensure_offline_file(settings.offline_path)
        store.apply(definitions(settings.offline_path))
    return store


@contextmanager
def offline_lock(offline_path: Path, *, exclusive: bool) -> Iterator[None]:
    """A lock between the offline file's writer (features) and its readers (training), across processes.

    Feast's file offline store reads the Parquet file more than once per retrieval (footer, then
    pages; dask may reopen it), so even an atomic rename under a reader can tear its view. Readers
    hold the lock shared for a whole retrieval, the writer exclusive for an append. The file store
    is a single-machine store anyway; a warehouse offline store needs none of this.
    """
    offline_path.parent.mkdir(parents=True, exist_ok=True)
    with open(offline_path.with_name(f".{offline_path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_offline_file(path: Path) -> None:
    """Feast reads the Parquet schema at apply time, so an empty file with the right columns must exist."""
    if path.exists():
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    from feature_repo.definitions import (
        CATEGORICAL_FEATURES,
        ENTITY_KEY,
        EVENT_TIME,
        FLOAT_FEATURES,
        NUMERIC_FEATURES,
    )

    fields = [pa.field(ENTITY_KEY, pa.string()), pa.field(EVENT_TIME, pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(f, pa.float64() if f in FLOAT_FEATURES else pa.int64()) for f in NUMERIC_FEATURES]
    fields += [pa.field(f, pa.string()) for f in CATEGORICAL_FEATURES]
    pq.write_table(pa.schema(fields).empty_table(), path)
