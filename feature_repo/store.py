"""Open the platform's feature store from settings (no feature_store.yaml to keep in sync).

Local default: SQLite online store and Parquet offline store under one folder. At scale, point
`online_store` at Redis or PostgreSQL through `online_store_config` (any Feast online store config).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # feast takes seconds to import: services import it lazily, once
    from feast import FeatureStore

log = logging.getLogger(__name__)

SQLITE_TYPES = ("sqlite", "feast.infra.online_stores.sqlite.SqliteOnlineStore")
"""The names Feast takes for its SQLite online store (no type at all is SQLite too)."""


@dataclass(frozen=True)
class FeatureStoreSettings:
    repo_dir: Path
    project: str = "mlops"
    online_store_config: dict[str, Any] = field(default_factory=dict)

    @property
    def offline_path(self) -> Path:
        """The offline store: a directory of Parquet part files, read as one table (feature_repo.offline)."""
        return self.repo_dir / "offline" / "loan_applications"

    @property
    def legacy_offline_file(self) -> Path:
        """The single Parquet file the offline store was before it became a directory; opening the
        store with `apply=True` moves it into the directory as its first part."""
        return self.repo_dir / "offline" / "loan_applications.parquet"


def open_store(settings: FeatureStoreSettings, *, apply: bool = False) -> FeatureStore:
    """The store; `apply=True` registers the definitions (idempotent; the features service does it)."""
    from feast import FeatureStore, RepoConfig

    from feature_repo import offline
    from feature_repo.definitions import definitions
    from feature_repo.online_tables import shape_online_tables

    settings.repo_dir.mkdir(parents=True, exist_ok=True)
    settings.offline_path.parent.mkdir(parents=True, exist_ok=True)
    online = settings.online_store_config or {"type": "sqlite", "path": str(settings.repo_dir / "online.db")}
    if online.get("type", "sqlite") in SQLITE_TYPES:  # Feast's own default path, relative to the repo
        _write_ahead_log(settings.repo_dir / str(online.get("path", "data/online.db")))
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
    _read_offline_parts_as_one_partition()
    _write_registry_by_rename()
    if apply:
        # Several features instances start at once in the cluster profile, and each registers the
        # definitions: Feast's file registry rewrites registry.db in place, so applies take turns.
        with _registry_lock(settings.repo_dir):
            offline.ensure(settings.offline_path, settings.legacy_offline_file)
            store.apply(definitions(settings.offline_path))
            shape_online_tables(store)
    return store


def plain_sqlite_store(provider: Any, config: Any) -> Any | None:
    """The provider's online store when it is Feast's plain SQLite store, else None. The features
    service's direct write and serving's direct read use its table as Feast does; with vector search
    or the OpenAI-compatible columns, or another store (Redis), Feast's own path must run."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    store = getattr(provider, "online_store", None)
    online = config.online_store
    if type(store) is not SqliteOnlineStore or getattr(online, "vector_enabled", False):
        return None
    if getattr(online, "enable_openai_compatible_store", False):
        return None
    return store


def online_table(config: Any, view: Any) -> str:
    """The quoted name of `view`'s table in Feast's SQLite online store (Feast's own `_table_id`)."""
    from feast.infra.online_stores.sqlite import _quote_id

    return str(_quote_id(online_table_id(config, view)))


def online_table_id(config: Any, view: Any) -> str:
    """The unquoted name of `view`'s table in Feast's SQLite online store."""
    from feast.infra.online_stores.sqlite import _table_id

    return str(_table_id(config.project, view, config.registry.enable_online_feature_view_versioning))


def _write_ahead_log(path: Path, timeout_s: float = 5.0) -> None:
    """Put the SQLite online store in WAL mode (it stays so in the file, for every process that opens
    it). In Feast's default, the rollback journal, serving's read of an entity waits while the features
    service commits a batch: online reads during pushes had a p99 of 4.06 ms against 0.83 ms in WAL
    mode (docs/benchmarks.md, "The SQLite online store in WAL mode"). The first process to open the
    store switches it; the others find it switched. If the file is busy, or not a database, it is left
    as it is (Feast then reads and writes it as before, or says what is wrong with it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=timeout_s)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
    except sqlite3.Error as err:  # WAL is a speed-up, not a need: never a reason not to start
        log.warning("online store %s left in its journal mode for now: %s", path, err)


@contextmanager
def _registry_lock(repo_dir: Path) -> Iterator[None]:
    with open(repo_dir / ".registry.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_RENAMING: list[Any] = []  # Feast's own registry writer, once replaced


def _write_registry_by_rename() -> None:
    """Feast 0.67's file registry (`FileRegistryStore._write_registry`) truncates registry.db and
    writes it in place, so a reader in another process (serving, training, the other features
    instance) can read it empty or half written, parse an empty registry ("feature view not found")
    and cache that for its TTL. The same write, to a temporary file renamed over the old one: a reader
    sees the old registry or the new one, whole. (Writers also take turns: `_registry_lock`.)"""
    if _RENAMING:
        return
    from feast.infra.registry import file as feast_file
    from feast.utils import _utc_now

    def write(self: Any, registry_proto: Any) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        path: Path = self._filepath
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        with open(partial, "wb") as out:
            out.write(registry_proto.SerializeToString())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)

    _RENAMING.append(feast_file.FileRegistryStore._write_registry)
    feast_file.FileRegistryStore._write_registry = write  # type: ignore[method-assign]


_ONE_PARTITION: list[Any] = []  # Feast's own reader, once wrapped


def _read_offline_parts_as_one_partition() -> None:
    """Feast 0.67's file offline store left-joins the entity rows to the source with dask, then sorts
    with `sort_values`. Over more than one partition that sort computes divisions, which fail on some
    layouts when the join leaves null times (entities with no row in a part, or none at all:
    "Divisions calculation failed for non-numeric column 'applied_at'"; test_training_feast_drop.py
    and test_feast_offline_parts.py in tests/integration). dask reads each Parquet part as a
    partition; the single file of before was one. So Feast's read of a source is wrapped to give one
    partition, as it had (the same rows; dask then sorts one partition in memory).
    """
    if _ONE_PARTITION:
        return
    from feast.infra.offline_stores import dask as feast_dask

    read = feast_dask._read_datasource

    def one_partition(data_source: Any, repo_path: Any) -> Any:
        return read(data_source, repo_path).repartition(npartitions=1)

    feast_dask._read_datasource = one_partition
    _ONE_PARTITION.append(read)


@contextmanager
def offline_lock(offline_path: Path, *, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """A lock between the offline store's writers (features) and its readers, across processes.

    Feast's file offline store lists and reads the parts more than once per retrieval (schema, then
    pages; dask reopens them), so a part deleted under a reader would tear its view. Readers and
    appends hold the lock shared; merging parts, which deletes them, holds it exclusive
    (feature_repo.offline says why appends need no more). The file store is a single-machine store
    anyway; a warehouse offline store needs none of this. Yields whether the lock is held: always
    with `wait`; without, False when another holder is in the way.
    """
    offline_path.parent.mkdir(parents=True, exist_ok=True)
    with open(offline_path.with_name(f".{offline_path.name}.lock"), "a") as handle:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            held = False
        else:
            held = True
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)
