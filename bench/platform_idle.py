"""What the whole stack costs when nothing flows: CPU per second of each component, as `mlops up`
starts it, with no record, request or label sent. Every consumer still asks Kafka for records, every
heartbeat and timer still runs; a stack on a developer's machine, or between bursts in production,
pays this all day, and a stream pays it on top of its own work.

The stack is started, left `--settle-s` to finish its start-up, then measured over `--windows` windows
of `--window-s` each (user + system CPU from /proc, children included). With `--compare KEY=VALUE`,
the stack is started `--repeats` times as it is and as many times with that one setting changed,
alternated (as it is, changed, as it is, ...), and the medians and their ratio are reported.

    python -m bench.platform_idle [--repeats 2] [--compare MLOPS_QUIET_FETCH_WAIT_MS=50]

Results go to bench/results/platform_idle.json (git-ignored); the write-up is in docs/benchmarks.md
("An idle stack"). Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.platform_stack import Stack, cpu_seconds, setting_arg
from infra.settings import REPO_ROOT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.platform_idle", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="stacks started per variant")
    p.add_argument("--settle-s", type=float, default=45.0, help="wait after `up` before measuring")
    p.add_argument("--windows", type=int, default=3, help="measured windows per stack")
    p.add_argument("--window-s", type=float, default=15.0)
    p.add_argument(
        "--compare", type=setting_arg, help="MLOPS_NAME=VALUE: a setting to measure against the default"
    )
    p.add_argument("--kafka-port", type=int, default=19_692)
    p.add_argument("--first-service-port", type=int, default=19_701)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "platform_idle.json")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.windows < 1 or args.window_s <= 0 or args.settle_s < 0:
        p.error("--repeats and --windows must be at least 1, --window-s above 0, --settle-s not negative")
    args.setting = dict([args.compare]) if args.compare else {}
    return args


def idle_cpu(args: argparse.Namespace, setting: dict[str, str]) -> list[dict[str, float]]:
    """ms of CPU per second of each component (and `total`), one dict per window."""
    with tempfile.TemporaryDirectory(prefix="mlops-idle-bench-") as folder:
        stack = Stack(Path(folder), args.kafka_port, args.first_service_port, settings_env=setting)
        stack.up()
        try:
            time.sleep(args.settle_s)
            pids, windows = stack.pids(), []
            for _ in range(args.windows):
                before, started = cpu_seconds(pids), time.monotonic()
                time.sleep(args.window_s)
                after, elapsed = cpu_seconds(pids), time.monotonic() - started
                per = {name: (after[name] - before[name]) / elapsed * 1000 for name in pids}
                windows.append({**per, "total": sum(per.values())})
            return windows
        finally:
            stack.down()


def medians(windows: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(statistics.median(w[name] for w in windows), 1) for name in windows[0]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    variants = {"as_is": {}, **({"changed": args.setting} if args.setting else {})}
    found: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, setting in variants.items():
            found[name] += idle_cpu(args, setting)
    result: dict[str, object] = {
        "compare": "=".join(args.compare) if args.compare else None,
        "windows_per_variant": {name: len(w) for name, w in found.items()},
        "cpu_ms_per_s_median": {name: medians(w) for name, w in found.items()},
        "total_cpu_ms_per_s_by_window": {n: [round(x["total"], 1) for x in w] for n, w in found.items()},
    }
    if args.setting:
        result["changed_over_as_is"] = round(
            statistics.median(w["total"] for w in found["changed"])
            / statistics.median(w["total"] for w in found["as_is"]),
            2,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
