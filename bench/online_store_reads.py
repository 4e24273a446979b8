"""Serving's online reads while the features service pushes: the SQLite online store in Feast's default
rollback journal against WAL mode (what `feature_repo.open_store` sets), in the same run.

Per run and mode, a fresh store: one process pushes `--records` demo applications in batches of 200
through `FeastPusher` (the features service's push), while a second process (as serving is) reads one
entity's features at a time through Feast's `get_online_features`, every 5 ms, for as long as the
pushes last. The modes alternate within each run, so a busy machine hits both alike. Reported per
mode: read latency p50, p99 and max (ms, medians over the runs) and the pusher's CPU per record (us).
Nothing here asserts on timings.

    python -m bench.online_store_reads [--records 40000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BATCH = 200
READER = """
import json, sys, time
from pathlib import Path
from feature_repo import FeatureStoreSettings, feature_refs, open_store
from feature_repo import store as store_module
store_module._write_ahead_log = lambda *args, **kwargs: None  # read the file in the mode it was left
store, refs = open_store(FeatureStoreSettings(Path(sys.argv[1]))), feature_refs()
ids = json.loads(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
latencies, i = [], 0
while not Path(sys.argv[3]).exists():
    started = time.perf_counter()
    store.get_online_features(features=refs, entity_rows=[{"application_id": ids[i % len(ids)]}]).to_dict()
    latencies.append(time.perf_counter() - started)
    i += 1
    time.sleep(0.005)
print(json.dumps(latencies))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.online_store_reads", description=__doc__.splitlines()[0]
    )
    p.add_argument("--records", type=int, default=40_000, help="applications pushed per run and mode")
    p.add_argument("--runs", type=int, default=3, help="runs; each pushes in both modes")
    args = p.parse_args(argv)
    if args.records < BATCH or args.runs < 1:
        p.error(f"--records must be {BATCH} or more (one batch) and --runs 1 or more")
    return args


def feature_rows(n: int) -> list[dict[str, Any]]:
    from workbench.feature_rows import demo_feature_rows

    return demo_feature_rows(n, seed=11, id_prefix="reads")


def one(mode: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    from feature_repo import FeatureStoreSettings
    from feature_repo import store as store_module
    from services.features.adapters.feast_push import FeastPusher

    with tempfile.TemporaryDirectory(prefix="online-reads-") as tmp:
        repo, done = Path(tmp), Path(tmp) / "done"
        if mode == "rollback":  # Feast's default: the store as it was before open_store switched it
            store_module._write_ahead_log, keep = (lambda *a, **k: None), store_module._write_ahead_log
        try:
            pusher = FeastPusher(FeatureStoreSettings(repo))
            pusher.open()
            pusher.push(rows[:BATCH])
        finally:
            if mode == "rollback":
                store_module._write_ahead_log = keep
        with sqlite3.connect(repo / "online.db") as conn:
            found_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert found_mode == ("wal" if mode == "wal" else "delete"), found_mode
        ids = json.dumps([r["application_id"] for r in rows[:BATCH]])
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, tmp, ids, str(done)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert reader.stdout is not None and reader.stdin is not None
        reader.stdout.readline()  # imports done, store open
        reader.stdin.write("go\n")
        reader.stdin.flush()
        started = time.process_time()
        for first in range(BATCH, len(rows), BATCH):
            pusher.push(rows[first : first + BATCH])
        push_cpu = time.process_time() - started
        done.touch()
        latencies = sorted(json.loads(reader.communicate(timeout=120)[0]))
    n = len(latencies)
    return {
        "reads": n, "p50_ms": latencies[n // 2] * 1000, "p99_ms": latencies[int(n * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000, "push_cpu_us_per_record": push_cpu / (len(rows) - BATCH) * 1e6,
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    rows = feature_rows(args.records + BATCH)
    runs: dict[str, list[dict[str, float]]] = {"rollback": [], "wal": []}
    for run in range(args.runs):
        for mode in ("rollback", "wal") if run % 2 == 0 else ("wal", "rollback"):
            runs[mode].append(one(mode, rows))
            print(mode, {k: round(v, 2) for k, v in runs[mode][-1].items()}, flush=True)
    medians = {mode: {k: round(statistics.median(r[k] for r in found), 2) for k in found[0]}
               for mode, found in runs.items()}  # fmt: skip
    medians["rollback_over_wal_p99"] = {
        "ratio": round(medians["rollback"]["p99_ms"] / medians["wal"]["p99_ms"], 2)
    }
    print(json.dumps({"records": args.records, "runs": args.runs, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
