"""`mlops replay --compare`: the rebuilt state side by side with the live one.

- features: the online values of every entity the replay pushed (its ledger names them), rebuilt
  against live: equal, different, or missing from the live store; and the rebuilt offline store's rows
  and duplicates (same entity and event time). "Same" is every entity equal and no duplicate. A live
  store that has read past the window may hold newer values for some entity: those show as different.
- audit: the chain's hashes cannot be rebuilt byte for byte by a second store (each row's hash covers
  its arrival sequence, the time it was recorded and its sealed body, encrypted under a random nonce),
  so the comparison is in two parts. (1) The live chain is recomputed in its own order with every
  replayed row's value digest taken from the record as the replay re-read it from Kafka: the same head
  hash means every live row holds exactly the bytes the log holds and every link is intact. (2) The
  fresh store built from the log verifies on its own and holds the same (topic, partition, offset,
  value digest) set as the live store over the window. "Same" is both.
- drift: each state table's row count, rebuilt against live, the per-partition offsets the detectors
  have consumed up to, and whether each detector's saved state is byte-equal. "Same" is equal offsets
  and equal counts. Detector state is reported, not required: the drift service joins three topics
  (records, predictions, labels), and a replay interleaves them differently from the live arrival,
  so windowed detectors may hold the same records in a different order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from infra.replay_window import Window
from servicekit.settings import ServiceSettings
from services.audit.settings import AuditSettings
from services.drift.settings import DriftSettings

ONLINE_CHUNK = 5000


def compare(live: ServiceSettings, state: Path, window: Window) -> dict[str, Any]:
    if isinstance(live, AuditSettings):
        return compare_audit(live, state, window)
    if isinstance(live, DriftSettings):
        return compare_drift(live, state)
    return compare_features(live, state)


def compare_features(live: ServiceSettings, state: Path) -> dict[str, Any]:
    import pandas as pd

    from feature_repo import FeatureStoreSettings
    from feature_repo.names import ENTITY_KEY, EVENT_TIME
    from feature_repo.store import offline_lock

    with sqlite3.connect(state / "features" / "ledger.db") as ledger:
        entities = sorted({row[0] for row in ledger.execute("SELECT entity_id FROM pushed")})
    rebuilt_settings = FeatureStoreSettings(state / "feast", project=live.feast_project)
    rebuilt = _online(rebuilt_settings, entities)
    current = _online(
        FeatureStoreSettings(live.feature_store_dir, live.feast_project, live.feast_online_store), entities
    )
    missing = [e for e in entities if all(v is None for v in current[e].values())]
    different = [e for e in entities if e not in missing and current[e] != rebuilt[e]]
    # Without Arrow's thread pools (CPU, and IO for pre-buffering): their threads can outlive the
    # read and abort this short-lived command at exit ("terminate called without an active
    # exception", apache/arrow#34314; seen once in CI as `mlops replay --compare` exiting -6).
    with offline_lock(rebuilt_settings.offline_path, exclusive=False):  # no merge deletes a part mid-read
        offline = pd.read_parquet(rebuilt_settings.offline_path, use_threads=False, pre_buffer=False)
    duplicates = int(offline.duplicated([ENTITY_KEY, EVENT_TIME]).sum())
    return {
        "entities": len(entities),
        "equal": len(entities) - len(missing) - len(different),
        "different": len(different),
        "missing_live": len(missing),
        "examples": (different + missing)[:5],
        "offline_rows": len(offline),
        "offline_duplicates": duplicates,
        "same": not different and not missing and duplicates == 0,
    }


def _online(settings: Any, entities: list[str]) -> dict[str, dict[str, Any]]:
    from feature_repo import feature_refs, open_store
    from feature_repo.names import ENTITY_KEY

    store = open_store(settings)
    values: dict[str, dict[str, Any]] = {}
    for i in range(0, len(entities), ONLINE_CHUNK):
        chunk = entities[i : i + ONLINE_CHUNK]
        table = store.get_online_features(
            features=feature_refs(), entity_rows=[{ENTITY_KEY: e} for e in chunk]
        )
        columns = {k: v for k, v in table.to_dict().items() if k != ENTITY_KEY}
        for n, entity in enumerate(chunk):
            values[entity] = {name: column[n] for name, column in columns.items()}
    return values


def compare_audit(live: AuditSettings, state: Path, window: Window) -> dict[str, Any]:
    from services.audit.adapters.store import SqlAuditStore
    from services.audit.domain.chain import CHAIN_FIELDS, GENESIS, link
    from services.audit.verification import verify_store

    topic, partition, offset, digest = (
        CHAIN_FIELDS.index(f) for f in ("topic", "partition", "offset", "value_sha256")
    )
    body, stored = len(CHAIN_FIELDS), len(CHAIN_FIELDS) + 1
    fresh = SqlAuditStore(f"sqlite:///{(state / 'audit' / 'audit.db').resolve()}")
    current = SqlAuditStore(live.resolved_database_url)
    try:
        rebuilt = {(r[topic], r[partition], r[offset]): r[digest] for r in fresh.chain_rows()}
        in_window = {k for k in rebuilt if _inside(window, k)}
        seen: set[tuple[str, int, int]] = set()
        prev, rows, linked, differ, missing = GENESIS, 0, 0, 0, 0
        for row in current.chain_rows():
            fields = list(row[:body])
            coordinates = (row[topic], row[partition], row[offset])
            if _inside(window, coordinates):
                seen.add(coordinates)
                from_log = rebuilt.get(coordinates)
                missing += from_log is None
                differ += from_log is not None and from_log != fields[digest]
                fields[digest] = from_log or fields[digest]
            prev = link(prev, fields, row[body])
            rows += 1
            linked += prev.hex() == row[stored]
        live_head = current.head()[0].hash.hex()
        fresh_report = verify_store(fresh)
    finally:
        fresh.dispose()
        current.dispose()
    only_rebuilt = len(in_window - seen)
    same = (
        linked == rows
        and prev.hex() == live_head
        and not (differ or missing or only_rebuilt)
        and fresh_report.ok
    )
    return {
        "live_rows": rows,
        "replayed_rows": len(seen),
        "rows_relinked_equal": linked,
        "live_head_hash": live_head,
        "recomputed_head_hash": prev.hex(),
        "digests_different": differ,
        "missing_in_replay": missing,
        "only_in_replay": only_rebuilt,
        "replay_rows": len(rebuilt),
        "replay_chain_verifies": fresh_report.ok,
        "replay_head_hash": fresh_report.head_hash,
        "same": same,
    }


def _inside(window: Window, coordinates: tuple[str, int, int]) -> bool:
    from aiokafka.structs import TopicPartition

    topic, partition, offset = coordinates
    tp = TopicPartition(topic, partition)
    return tp in window.ends and window.starts[tp] <= offset < window.ends[tp]


def compare_drift(live: DriftSettings, state: Path) -> dict[str, Any]:
    rebuilt_path, live_path = state / "drift" / "drift.db", live.resolved_state_path
    rebuilt, current = _table_counts(rebuilt_path), _table_counts(live_path)
    tables = sorted(set(rebuilt) | set(current))
    side_by_side = {t: {"live": current.get(t), "replay": rebuilt.get(t)} for t in tables}
    offsets_equal = _rows(live_path, "offsets") == _rows(rebuilt_path, "offsets")
    live_blobs, rebuilt_blobs = dict(_rows(live_path, "blobs")), dict(_rows(rebuilt_path, "blobs"))
    blobs = {
        name: live_blobs.get(name) == rebuilt_blobs.get(name)
        for name in sorted(set(live_blobs) | set(rebuilt_blobs))
    }
    return {
        "tables": side_by_side,
        "offsets_equal": offsets_equal,
        "detector_state_equal": blobs,
        "same": offsets_equal and all(v["live"] == v["replay"] for v in side_by_side.values()),
    }


def _table_counts(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {name: int(db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]) for name in names}


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    """A drift state table's rows in a stable order (empty when the file or table is missing)."""
    if table not in _table_counts(path):
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return sorted(tuple(r) for r in db.execute(f'SELECT * FROM "{table}"'))
