"""What one append to the offline store costs as the store grows: the single Parquet file read,
concatenated and rewritten per batch (the features service's `append_offline` before the store became
a directory; copied below as the baseline) against one new part per batch with tiered merges
(`feature_repo.offline`), in one run, batch by batch alternately into two fresh stores.

    .venv/bin/python -m bench.offline_append --rows 200000 --batch 200 [--runs 3]

Reports the median wall ms per batch over the first, middle and last `--window` batches, the ratio
old/new of each, the new method's mean and slowest batch (a merge lands on some batches), both stores'
totals, and the new store's part count. Both methods take the same frames (as `rows_frame` builds
them), so the pandas-to-Arrow conversion is in both. Timings are reported, never asserted. Prints
JSON and writes bench/results/offline_append.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean, median
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo import offline
from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, EVENT_TIME, FLOAT_FEATURES, NUMERIC_FEATURES
from feature_repo.store import offline_lock
from services.features.adapters.feast_push import append_offline, rows_frame

RESULTS = Path(__file__).parent / "results" / "offline_append.json"


def old_append_offline(path: Path, frame: pd.DataFrame) -> None:
    """The baseline: `append_offline` as it was on main before the directory (one file, rewritten)."""
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


def frames(rows: int, batch: int, seed: int = 7) -> list[pd.DataFrame]:
    """Feature rows with German-credit-like spreads (codes A11..A14, amounts, ages), one frame a batch."""
    rng = random.Random(seed)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    out = []
    for first in range(0, rows, batch):
        chunk = []
        for i in range(first, min(first + batch, rows)):
            row: dict[str, Any] = {ENTITY_KEY: f"app-{i:08d}", EVENT_TIME: start + timedelta(seconds=i)}
            for name in NUMERIC_FEATURES:
                row[name] = round(rng.uniform(250, 18e3), 2) if name in FLOAT_FEATURES else rng.randint(1, 72)
            row |= {f: f"A{rng.randint(1, 4)}{rng.randint(1, 5)}" for f in CATEGORICAL_FEATURES}
            chunk.append(row)
        out.append(rows_frame(chunk))
    return out


def timed(call: Any, *args: Any) -> float:
    started = time.perf_counter()
    call(*args)
    return (time.perf_counter() - started) * 1000


def run_once(batches: list[pd.DataFrame], window: int) -> dict[str, Any]:
    old_ms: list[float] = []
    new_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        old_file, new_dir = Path(tmp) / "old" / "offline.parquet", Path(tmp) / "new" / "offline"
        old_file.parent.mkdir()
        pq.write_table(offline.offline_schema().empty_table(), old_file)  # as the old seed was
        offline.ensure(new_dir)
        for i, frame in enumerate(batches):  # alternate which goes first: the machine is shared
            if i % 2:
                new_ms.append(timed(append_offline, new_dir, frame))
                old_ms.append(timed(old_append_offline, old_file, frame))
            else:
                old_ms.append(timed(old_append_offline, old_file, frame))
                new_ms.append(timed(append_offline, new_dir, frame))
        rows = sum(len(f) for f in batches)
        assert pq.read_table(old_file).num_rows == rows and pq.read_table(new_dir).num_rows == rows
        parts = len(offline.parts(new_dir))
    middle = len(batches) // 2 - window // 2
    spans = {"start": slice(0, window), "middle": slice(middle, middle + window), "end": slice(-window, None)}
    figures: dict[str, Any] = {}
    for name, span in spans.items():
        old, new = median(old_ms[span]), median(new_ms[span])
        figures[name] = {"old_ms": round(old, 2), "new_ms": round(new, 2), "ratio": round(old / new, 1)}
    figures["new_mean_ms"] = round(mean(new_ms), 2)
    figures["new_max_ms"] = round(max(new_ms), 1)
    figures["old_total_s"] = round(sum(old_ms) / 1000, 1)
    figures["new_total_s"] = round(sum(new_ms) / 1000, 1)
    figures["new_parts_at_end"] = parts
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--window", type=int, default=50, help="batches in each of start, middle, end")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    batches = frames(args.rows, args.batch)
    window = min(args.window, max(1, len(batches) // 3))
    runs = []
    for number in range(args.runs):
        runs.append(run_once(batches, window))
        print(json.dumps({"run": number + 1} | runs[-1]), flush=True)
    summary: dict[str, Any] = {"rows": args.rows, "batch": args.batch, "window_batches": window}
    for name in ("start", "middle", "end"):
        summary[name] = {k: median(r[name][k] for r in runs) for k in ("old_ms", "new_ms", "ratio")}
    for key in ("new_mean_ms", "new_max_ms", "old_total_s", "new_total_s", "new_parts_at_end"):
        summary[key] = median(r[key] for r in runs)
    summary["runs"] = runs
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
