"""The offline store: a directory of Parquet part files (a Parquet dataset) that grows by adding files.

Feast's `FileSource` points at the directory; Feast (dask's `read_parquet`), `pq.read_table` and
`pd.read_parquet` read every part as one table, in name order. Layout:

- `part-<key>-<kind><pid>x<uuid>-<rows>r.parquet`: a part, never changed once in place. `<key>` (20
  digits) orders the parts: nanoseconds since the epoch when appended, 0 for the seed, 1 for a
  pre-dataset file moved in; a merged part keeps its oldest input's key. `<kind>` is `a` (append),
  `m` (merge), `s` (seed) or `u` (upgrade).
- `.part-....parquet.tmp`: a part being written, renamed into place once whole. Hidden, and not
  ending in `.parquet`: pyarrow's datasets skip names that start with `.` or `_`, but dask's
  `read_parquet` lists a directory by extension, hidden files included (dask 2026.8: it opened a
  hidden `.x.parquet` and failed on it).

Locking (`feature_repo.store.offline_lock` on the directory, one flock shared by all processes):

- Readers (training through Feast, batch scoring, replay's compare) hold it shared for a whole read.
- An append holds it SHARED too. It only adds a file, by an atomic rename: a reader listing the
  directory sees the new part or not, never half of it, and the parts it listed never change or
  go. So appends from any number of processes run at once, and an append never waits for a reader.
- A merge (compaction) and the upgrade hold it EXCLUSIVE: they delete parts, which a reader may have
  listed and not opened yet; and between a merged part's rename and its inputs' deletion, rows are
  there twice. No reader or append runs meanwhile. A merge never waits for the lock unless the part
  count is past `MAX_PARTS`: when a reader holds it, the next append tries again.

Merges are tiered, as in a log-structured store: a part of r rows is of tier floor(log_8 r); when a
tier holds `FANOUT` (8) parts they merge into one part of a higher tier. Each row is rewritten once
per tier it climbs (log_8 of rows/batch times, 4 for 1M rows in batches of 200), so an append costs
O(batch) amortised, never O(store); the directory holds at most 7 parts per tier (56 below 16.7M
rows); past `MAX_PARTS` the smallest parts merge whatever their tiers. A merged part lists its
inputs in its Parquet metadata (`mlops.replaces`): a merge that died between its rename and the
deletions is finished by the next one, or on open.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, EVENT_TIME, FLOAT_FEATURES, NUMERIC_FEATURES
from feature_repo.store import offline_lock

log = logging.getLogger(__name__)

FANOUT = 8
MAX_PARTS = 64
REPLACES = b"mlops.replaces"
SEED_KEY, UPGRADE_KEY = 0, 1
_PART = re.compile(r"^part-(?P<key>\d{20})-(?P<kind>[a-z])[0-9a-z]*-(?P<rows>\d+)r\.parquet$")


def offline_schema() -> pa.Schema:
    """The one schema of every part: entity, event time (us, UTC), the features as the view types them."""
    fields = [pa.field(ENTITY_KEY, pa.string()), pa.field(EVENT_TIME, pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(f, pa.float64() if f in FLOAT_FEATURES else pa.int64()) for f in NUMERIC_FEATURES]
    fields += [pa.field(f, pa.string()) for f in CATEGORICAL_FEATURES]
    return pa.schema(fields)


@dataclass(frozen=True)
class Part:
    path: Path
    key: int
    kind: str
    rows: int

    @property
    def tier(self) -> int:
        tier, rows = 0, self.rows
        while rows >= FANOUT:
            rows //= FANOUT
            tier += 1
        return tier


def parts(directory: Path) -> list[Part]:
    """The parts readers see, in key (append) order; a Parquet file of another name counts too."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        if path.name.startswith((".", "_")) or path.suffix != ".parquet":
            continue
        named = _PART.match(path.name)
        if named:
            found.append(Part(path, int(named["key"]), named["kind"], int(named["rows"])))
        else:
            found.append(Part(path, 0, "?", pq.read_metadata(path).num_rows))
    return sorted(found, key=lambda p: (p.key, p.path.name))


def conform(table: pa.Table) -> pa.Table:
    """`table` cast to the offline schema (an all-None column stays a string, not `null`)."""
    schema = offline_schema()
    if table.column_names != schema.names:
        raise ValueError(f"columns {table.column_names} differ from the offline store's {schema.names}")
    return table.cast(schema)


def append(directory: Path, table: pa.Table) -> None:
    """Add `table` as one new part: O(rows of the batch). Then merge, if a tier is full."""
    table = conform(table)
    if table.num_rows == 0:
        return
    directory.mkdir(parents=True, exist_ok=True)
    with offline_lock(directory, exclusive=False):  # adds a file, removes none: see the module doc
        _write_part(directory, table, "a", time.time_ns())
        listed = parts(directory)
    if merge_due(listed):
        # Waits for the lock only past MAX_PARTS, when readers held it at every append before: waiting
        # (for the current reads to end; Linux's flock lets new shared holders in ahead of a waiting
        # exclusive one, so for as long as reads overlap) is the price of a bounded part count. A
        # training read takes seconds; the consumer's poll interval allows five minutes.
        try:
            merge(directory, wait=len(listed) > MAX_PARTS)
        except (OSError, ValueError, pa.ArrowException):  # the rows are stored; it leaves more parts
            log.exception("merging the offline store's parts failed; the next append tries again")


def merge_due(listed: list[Part]) -> bool:
    return bool(_next_group(listed))


def merge(directory: Path, *, wait: bool = True) -> int:
    """Merge full tiers (under the exclusive lock); the number of parts removed. `wait=False`: when a
    reader or an append holds the lock, do nothing (0)."""
    removed = 0
    with offline_lock(directory, exclusive=True, wait=wait) as held:
        if not held:
            return 0
        recover(directory)
        while group := _next_group(parts(directory)):
            _merge(directory, group)
            removed += len(group) - 1
    return removed


def ensure(directory: Path, legacy_file: Path | None = None) -> None:
    """Make the store readable by Feast: the directory, a pre-dataset file moved in as its first part
    (once), an empty seed part when there is none (Feast reads the schema at apply), and a merge that
    died finished."""
    directory.mkdir(parents=True, exist_ok=True)
    with offline_lock(directory, exclusive=True):
        recover(directory)
        if legacy_file is not None and legacy_file.exists():
            _adopt(directory, legacy_file)
        if not parts(directory):
            _write_part(directory, offline_schema().empty_table(), "s", SEED_KEY)


def recover(directory: Path) -> None:
    """Under the exclusive lock: drop parts being written (no append runs), and inputs that a merged
    part replaces but a merge that died left behind."""
    for stale in directory.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    for part in parts(directory):
        if part.kind == "m":
            replaced = (pq.read_schema(part.path).metadata or {}).get(REPLACES, b"[]")
            for name in json.loads(replaced):
                (directory / name).unlink(missing_ok=True)


def _next_group(listed: list[Part]) -> list[Part]:
    by_tier: dict[int, list[Part]] = defaultdict(list)
    for part in listed:
        by_tier[part.tier].append(part)
    for tier in sorted(by_tier):
        if len(by_tier[tier]) >= FANOUT:
            return by_tier[tier]
    if len(listed) > MAX_PARTS:
        return sorted(listed, key=lambda p: p.rows)[: len(listed) - MAX_PARTS // 2]
    return []


def _merge(directory: Path, group: list[Part]) -> None:
    """One part for `group` (their rows in key order), then the inputs deleted: exclusive lock held."""
    group = sorted(group, key=lambda p: (p.key, p.path.name))
    table = pa.concat_tables([conform(pq.read_table(p.path)) for p in group])
    replaces = json.dumps([p.path.name for p in group]).encode()
    _write_part(directory, table.replace_schema_metadata({REPLACES: replaces}), "m", group[0].key)
    for part in group:
        part.path.unlink()


def _adopt(directory: Path, legacy_file: Path) -> None:
    """Move the single file of the store before it was a directory in, as its first part: rewritten
    in place first if its schema is not the parts' (each step a rename, so a crash repeats none)."""
    if pq.read_schema(legacy_file).remove_metadata() != offline_schema():
        partial = legacy_file.with_name(f".{legacy_file.name}.tmp")
        pq.write_table(conform(pq.read_table(legacy_file)), partial)
        os.replace(partial, legacy_file)
    rows = pq.read_metadata(legacy_file).num_rows
    os.replace(legacy_file, directory / _part_name(UPGRADE_KEY, "u", rows))
    legacy_file.with_name(f".{legacy_file.name}.lock").unlink(missing_ok=True)  # the old lock's file
    log.info("offline store: %s moved into %s (%d rows)", legacy_file, directory, rows)


def _write_part(directory: Path, table: pa.Table, kind: str, key: int) -> Path:
    """Write under a hidden temporary name, then rename into place (atomic: seen whole or not at all)."""
    final = directory / _part_name(key, kind, table.num_rows)
    partial = directory / f".{final.name}.tmp"
    pq.write_table(table, partial)
    os.replace(partial, final)
    return final


def _part_name(key: int, kind: str, rows: int) -> str:
    return f"part-{key:020d}-{kind}{os.getpid()}x{uuid.uuid4().hex[:12]}-{rows}r.parquet"
