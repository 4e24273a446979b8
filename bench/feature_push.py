"""What writing a batch of feature rows online costs the features service: `FeatureStore.push` of a
pandas frame (what the service did before 2026-12-06) against the direct write it does now
(services/features/adapters/online_rows.py: each value into its protobuf field, then the same
`online_write_batch`), in the same run. Online store only (the offline append is the same for both).
Two more ways undo what `open_store` does to Feast's table (feature_repo/online_tables.py), one step
at a time: `direct_rowid` writes into the table with its rowids back (a rowid table, as Feast makes
it, its `<table>_ek` index still empty), and `direct_feast_table` into the table exactly as Feast
makes it (rowids, and the full `_ek` index, which duplicates the primary key's). Paired within each
run: what each step costs a write, the store's size, and a read of one entity's values as serving
makes it (`--reads` entities, CPU microseconds per read).

Per run and way, a fresh SQLite online store (WAL, as `feature_repo.open_store` sets it) gets
`--records` demo applications in batches of `--batch`. Reported: CPU microseconds per record
(`time.process_time`, so a busy shared machine does not skew it), medians over `--runs`, and their
ratio. The ways alternate within each run. Nothing here asserts on timings.

    python -m bench.feature_push [--records 10000] [--batch 200] [--runs 3] [--reads 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# The ways, in the order each run takes them.
WAYS = ("push", "direct", "direct_rowid", "direct_feast_table")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.feature_push", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=10_000, help="applications written per run and way")
    p.add_argument("--batch", type=int, default=200, help="rows per write (the service's batches)")
    p.add_argument("--runs", type=int, default=3, help="runs; each writes every way")
    p.add_argument("--reads", type=int, default=2000, help="entities read back per run and way")
    args = p.parse_args(argv)
    for name in ("records", "batch", "runs", "reads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def demo_rows(n: int) -> list[dict[str, Any]]:
    from workbench.feature_rows import demo_feature_rows

    return demo_feature_rows(n, seed=3, id_prefix="push")


def cpu_us_per_record(
    way: str, rows: list[dict[str, Any]], batch: int, reads: int
) -> tuple[float, float, float]:
    """CPU microseconds per record of writing `rows` online `way`; the online store's size afterwards
    (MiB, write-ahead log included: what the pages take, checkpointed or not); and CPU microseconds
    per read of one entity's values, as serving reads them (services/serving/adapters/sqlite_read.py)."""
    from feast.data_source import PushMode

    from feature_repo import ENTITY_KEY, FEATURE_VIEW, FEATURES, PUSH_SOURCE, FeatureStoreSettings, open_store
    from services.features.adapters.feast_push import rows_frame
    from services.features.adapters.online_rows import OnlineRows
    from services.serving.adapters.sqlite_read import SqliteRead

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(FeatureStoreSettings(Path(folder)), apply=True)
        if way in ("direct_rowid", "direct_feast_table"):
            _restore_rowids(Path(folder) / "online.db")
        if way == "direct_feast_table":
            _restore_feasts_index(Path(folder) / "online.db")
        direct = OnlineRows(store)
        started = time.process_time()
        for first in range(0, len(rows), batch):
            part = rows[first : first + batch]
            if way == "push":
                store.push(PUSH_SOURCE, rows_frame(part), to=PushMode.ONLINE)
            else:
                direct.write(part)
        cpu_us = (time.process_time() - started) / len(rows) * 1e6
        reader = SqliteRead.of(store, FEATURE_VIEW)
        assert reader is not None, "the bench's store is Feast's plain SQLite one"
        ids = [str(row[ENTITY_KEY]) for row in rows[:: max(1, len(rows) // reads)]][:reads]
        names = list(FEATURES)
        started = time.process_time()
        for entity_id in ids:
            if reader.read([entity_id], names)[0] is None:
                raise RuntimeError(f"{way}: {entity_id} was written but does not read back")
        read_us = (time.process_time() - started) / len(ids) * 1e6
        return cpu_us, _store_mib(Path(folder) / "online.db"), read_us


def _store_mib(path: Path) -> float:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        (size,) = conn.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        return float(size[0]) / 2**20
    finally:
        conn.close()


def _restore_feasts_index(path: Path) -> None:
    """The `<table>_ek` index as Feast makes it: on entity_key, for every row."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for (index,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name GLOB '*_ek'"
        ):
            table = index.removesuffix("_ek")
            conn.execute(f'DROP INDEX "{index}"')
            conn.execute(f'CREATE INDEX "{index}" ON "{table}" (entity_key)')


def _restore_rowids(path: Path) -> None:
    """Each online table as Feast makes it, a rowid table (its `_ek` index left empty)."""
    import sqlite3

    from feature_repo.online_tables import EMPTY_INDEX_TAIL

    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        for table, sql in tables:
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_old"')
            conn.execute(sql.replace("WITHOUT ROWID", ""))
            conn.execute(f'INSERT INTO "{table}" SELECT * FROM "{table}_old"')
            conn.execute(f'DROP TABLE "{table}_old"')
            conn.execute(f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key) {EMPTY_INDEX_TAIL}')
    conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = demo_rows(args.records)
    found: dict[str, list[float]] = {way: [] for way in WAYS}
    reads: dict[str, list[float]] = {way: [] for way in WAYS}
    sizes: dict[str, float] = {}
    for _ in range(args.runs):
        for way in found:
            cpu_us, sizes[way], read_us = cpu_us_per_record(way, rows, args.batch, args.reads)
            found[way].append(cpu_us)
            reads[way].append(read_us)
    medians = {way: statistics.median(values) for way, values in found.items()}

    def paired(way: str, over: str, of: dict[str, list[float]]) -> float:
        """The median over runs of `way` over `over` (the two ran back to back in each run)."""
        return round(statistics.median(a / b for a, b in zip(of[way], of[over], strict=True)), 2)

    print(
        json.dumps(
            {
                "records": args.records,
                "batch": args.batch,
                "runs": args.runs,
                "cpu_us_per_record": {way: [round(v, 1) for v in values] for way, values in found.items()},
                "median_cpu_us_per_record": {way: round(v, 1) for way, v in medians.items()},
                "push_over_direct": round(medians["push"] / medians["direct"], 2),
                # Each step back to Feast's table: its rowids, then its full index on top.
                "rowid_over_direct": {
                    "write_paired": paired("direct_rowid", "direct", found),
                    "read_paired": paired("direct_rowid", "direct", reads),
                    "size": round(sizes["direct_rowid"] / sizes["direct"], 2),
                },
                "feast_index_over_rowid": {
                    "write_paired": paired("direct_feast_table", "direct_rowid", found),
                    "read_paired": paired("direct_feast_table", "direct_rowid", reads),
                    "size": round(sizes["direct_feast_table"] / sizes["direct_rowid"], 2),
                },
                "read_cpu_us": {way: [round(v, 1) for v in values] for way, values in reads.items()},
                "online_store_mib": {way: round(mib, 2) for way, mib in sizes.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
