"""Checks RankCusum's threshold calibration by simulating the whole detector under no change.

Ranks against the reference make the detector's no-change behaviour the same for every continuous
feature, so uniform values stand for all of them. Each of `--streams` streams draws its own reference
of m values, then `--rows` values; the same transform as `RankCusum` (rank -> normal score), then a
two-sided CUSUM per threshold h, restarted at 0 after each alarm with the SAME reference (bad
references keep alarming: conservative against the service, which re-learns its reference after an
alarm). The simulated false-alarm rate per row is compared with the rate `arl0_of(h)` predicts
(Siegmund, corrected for the reference's estimation error) and with uncorrected Siegmund. Poisson 95 %
intervals on the alarm counts.

    .venv/bin/python -m bench.cusum_calibration [--streams 10000] [--rows 20000] [--m 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2

from services.drift.domain.cusum import arl0_of, normal_scores, siegmund_arl, threshold_for

RESULTS = Path(__file__).resolve().parent / "results" / "cusum_calibration.json"
TARGETS = (1e4, 1e5, 7e5, 2e6)


def poisson_interval(count: int) -> tuple[float, float]:
    low = 0.0 if count == 0 else float(chi2.ppf(0.025, 2 * count)) / 2
    return low, float(chi2.ppf(0.975, 2 * count + 2)) / 2


def simulate(streams: int, rows: int, m: int, k: float, hs: list[float], seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    scores = np.asarray(normal_scores(m))
    offsets = np.arange(streams)[:, None] * 2.0  # streams side by side on one axis for searchsorted
    reference = (np.sort(rng.random((streams, m)), axis=1) + offsets).ravel()
    up = np.zeros((len(hs), streams))
    down = np.zeros((len(hs), streams))
    limits = np.asarray(hs)[:, None]
    alarms = np.zeros(len(hs), dtype=np.int64)
    chunk = 500
    for _ in range(0, rows, chunk):
        values = rng.random((streams, chunk)) + offsets
        pos = np.searchsorted(reference, values.ravel()).reshape(streams, chunk)
        z = scores[pos - np.arange(streams)[:, None] * m]
        for j in range(chunk):
            zj = z[:, j]
            np.maximum(up + (zj - k), 0.0, out=up)
            np.maximum(down - (zj + k), 0.0, out=down)
            hit = (up > limits) | (down > limits)
            if hit.any():
                alarms += hit.sum(axis=1)
                up[hit] = 0.0
                down[hit] = 0.0
    return [int(a) for a in alarms]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--k", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    hs = [threshold_for(a, args.k, args.m) for a in TARGETS]
    started = time.perf_counter()
    counts = simulate(args.streams, args.rows, args.m, args.k, hs, args.seed)
    total = args.streams * args.rows
    rows: list[dict[str, Any]] = []
    for target, h, count in zip(TARGETS, hs, counts, strict=True):
        low, high = poisson_interval(count)
        rows.append(
            {
                "target_arl0": target,
                "h": h,
                "predicted_arl0_corrected": round(arl0_of(h, args.k, args.m)),
                "predicted_arl0_siegmund_uncorrected": round(siegmund_arl(h, args.k) / 2),
                "alarms": count,
                "simulated_arl0": round(total / count) if count else None,
                "simulated_arl0_95ci": [round(total / high), round(total / low) if low else None],
            }
        )
    result = {
        "command": f".venv/bin/python -m bench.cusum_calibration --streams {args.streams} --rows {args.rows} "
        f"--m {args.m} --k {args.k} --seed {args.seed}",
        "stream_rows": total,
        "seconds": round(time.perf_counter() - started, 1),
        "thresholds": rows,
    }
    print(json.dumps(result, indent=1))
    out = RESULTS.with_name(f"cusum_calibration_m{args.m}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
