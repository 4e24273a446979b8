"""What writing a batch of feature rows online costs the features service: `FeatureStore.push` of a
pandas frame (what the service did before 2026-12-06) against the direct write it does now
(services/features/adapters/online_rows.py: each value into its protobuf field, then the same
`online_write_batch`), in the same run. Online store only (the offline append is the same for both).
A third way is the direct write into a table that still has Feast's full `<table>_ek` index, which
duplicates the primary key's and which `open_store` now empties (feature_repo/store.py): what that
index costs each write.

Per run and way, a fresh SQLite online store (WAL, as `feature_repo.open_store` sets it) gets
`--records` demo applications in batches of `--batch`. Reported: CPU microseconds per record
(`time.process_time`, so a busy shared machine does not skew it), medians over `--runs`, and their
ratio. The ways alternate within each run. Nothing here asserts on timings.

    python -m bench.feature_push [--records 10000] [--batch 200] [--runs 3]
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
WAYS = ("push", "direct", "direct_feast_index")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.feature_push", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=10_000, help="applications written per run and way")
    p.add_argument("--batch", type=int, default=200, help="rows per write (the service's batches)")
    p.add_argument("--runs", type=int, default=3, help="runs; each writes both ways")
    args = p.parse_args(argv)
    for name in ("records", "batch", "runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def demo_rows(n: int) -> list[dict[str, Any]]:
    from workbench.feature_rows import demo_feature_rows

    return demo_feature_rows(n, seed=3, id_prefix="push")


def cpu_us_per_record(way: str, rows: list[dict[str, Any]], batch: int) -> tuple[float, float]:
    """CPU microseconds per record of writing `rows` online `way`, and the online store's size
    afterwards (MiB, write-ahead log included: what the pages take, checkpointed or not)."""
    from feast.data_source import PushMode

    from feature_repo import PUSH_SOURCE, FeatureStoreSettings, open_store
    from services.features.adapters.feast_push import rows_frame
    from services.features.adapters.online_rows import OnlineRows

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(FeatureStoreSettings(Path(folder)), apply=True)
        if way == "direct_feast_index":
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
        return cpu_us, _store_mib(Path(folder) / "online.db")


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = demo_rows(args.records)
    found: dict[str, list[float]] = {way: [] for way in WAYS}
    sizes: dict[str, float] = {}
    for _ in range(args.runs):
        for way in found:
            cpu_us, sizes[way] = cpu_us_per_record(way, rows, args.batch)
            found[way].append(cpu_us)
    medians = {way: statistics.median(values) for way, values in found.items()}
    print(
        json.dumps(
            {
                "records": args.records,
                "batch": args.batch,
                "runs": args.runs,
                "cpu_us_per_record": {way: [round(v, 1) for v in values] for way, values in found.items()},
                "median_cpu_us_per_record": {way: round(v, 1) for way, v in medians.items()},
                "push_over_direct": round(medians["push"] / medians["direct"], 2),
                "feast_index_over_direct": round(medians["direct_feast_index"] / medians["direct"], 2),
                "online_store_mib": {way: round(mib, 2) for way, mib in sizes.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
