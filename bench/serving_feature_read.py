"""Serving's online feature read: Feast's `get_online_features` against the direct SQLite read
(services/serving/adapters/sqlite_read.py), in process, on the same store, in the same run.

A fresh store gets `--records` demo applications through the features service's own write; then each
of `--runs` rounds times `--reads` single-entity reads of every feature, by each path in turn (the
order alternates per round, so a busy machine hits both alike). Reported: CPU microseconds per read
(process time), medians over the rounds, and the ratio. Nothing here asserts on timings.

    python -m bench.serving_feature_read [--records 2000] [--reads 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from feature_repo import FeatureStoreSettings, open_store
from feature_repo.names import ENTITY_KEY, FEATURES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--reads", type=int, default=2000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    if min(args.records, args.reads, args.runs) < 1:
        p.error("--records, --reads and --runs must be at least 1")
    return args


def cpu_us_per_read(read: Callable[[list[str], list[str]], object], ids: list[str], reads: int) -> float:
    names, chosen = list(FEATURES), random.Random(7)
    started = time.process_time()
    for _ in range(reads):
        read([chosen.choice(ids)], names)
    return (time.process_time() - started) / reads * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    from services.features.adapters.online_rows import OnlineRows
    from services.serving.adapters.feast_online import FeastOnlineFeatures
    from workbench.feature_rows import demo_feature_rows

    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder)
        rows = demo_feature_rows(args.records, seed=3, id_prefix="bench")
        OnlineRows(open_store(FeatureStoreSettings(repo), apply=True)).write(rows)
        features = FeastOnlineFeatures(repo, "mlops", {})
        features.open()
        if features._direct is None:
            raise SystemExit("the direct read was not taken on this store")
        ids = [row[ENTITY_KEY] for row in rows]
        paths = {"feast": features._feast_read, "direct": features._direct.read}
        timings: dict[str, list[float]] = {name: [] for name in paths}
        for run in range(args.runs):
            for name in sorted(paths, reverse=run % 2 == 1):
                timings[name].append(cpu_us_per_read(paths[name], ids, args.reads))
    result = {f"{name}_us_per_read": round(statistics.median(t), 1) for name, t in timings.items()}
    result["direct_over_feast"] = round(result["direct_us_per_read"] / result["feast_us_per_read"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
