"""The platform benchmark on several profiles in one invocation (issue #14): the local profile with one
instance of each service (the baseline), the cluster profile with one instance, and the cluster profile
with two instances of ingest and serving, one stack after the other (each `mlops down` before the next
`mlops up`, on the same ports), each phase repeated on the same stack for medians.

    .venv/bin/python -m bench.profile_compare [--configs local-1,cluster-1,cluster-2] [--records 6000]
        [--repeats 3] [--rate 0] [--kafka-port 41092] [--first-service-port 42101]

Per configuration: the raw broker's produce/consume rate (once), then `--repeats` max-rate phases (and,
with `--rate R`, as many phases at R records/s) of bench.platform_throughput, without serving load.
Prints one table: end-to-end records/s (median, and its ratio to the first configuration's), CPU ms per
record per component (medians), the consumer group that caught up last, and memory (the profile's
total RSS, median and peak over the phases, and each component's median). Results go to
bench/results/profile_compare.json and each stack's logs to bench/results/profile_compare-logs/
(both git-ignored). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.platform_postgres import PostgresProbe
from bench.platform_produce import baseline
from bench.platform_stack import Stack
from bench.platform_throughput import add_stack_args, demo_records, make_stack, run_phase
from bench.profile_compare_table import render
from infra.settings import REPO_ROOT

CONFIGS = {"local-1": ("local", 1), "cluster-1": ("cluster", 1), "cluster-2": ("cluster", 2)}
RESULTS = REPO_ROOT / "bench" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--configs", default="local-1,cluster-1,cluster-2", help=f"of {', '.join(CONFIGS)}")
    p.add_argument("--records", type=int, default=6000, help="records of each max-rate phase")
    p.add_argument("--repeats", type=int, default=3, help="phases of each kind per stack")
    p.add_argument("--rate", type=float, default=0.0, help="also a fixed rate, records/s (0: none)")
    p.add_argument("--rate-seconds", type=float, default=20.0)
    p.add_argument("--drain-timeout-s", type=float, default=600.0)
    add_stack_args(p)
    p.add_argument("--out", type=Path, default=RESULTS / "profile_compare.json")
    return p.parse_args(argv)


async def measure(args: argparse.Namespace, stack: Stack, label: str) -> dict[str, Any]:
    run = f"c{int(time.time()) % 100_000}"
    warm = demo_records(args.records, seed=10, prefix=f"{run}-{label}-base")
    result: dict[str, Any] = {"baseline": await baseline(stack.bootstrap, warm), "phases": []}
    print(json.dumps({label: {"baseline": result["baseline"]}}), flush=True)
    kinds = [("max", 0.0, args.records)]
    if args.rate:
        kinds.append((f"rate-{args.rate:g}", args.rate, int(args.rate * args.rate_seconds)))
    for repeat in range(args.repeats):
        for kind, rate, n in kinds:
            items = demo_records(n, seed=11 + repeat, prefix=f"{run}-{label}-{kind}-{repeat}")
            probe = PostgresProbe(stack) if stack.profile == "cluster" else None
            if probe is not None:
                await probe.start()
            phase = await run_phase(stack, kind, items, rate, args.drain_timeout_s)
            if probe is not None:
                phase["postgres"] = await probe.stop()
                print(json.dumps({label: {"postgres": phase["postgres"]}}, default=str), flush=True)
            phase["repeat"] = repeat
            result["phases"].append(phase)
            shown = (
                "phase",
                "records_per_s",
                "end_to_end_s",
                "cpu_ms_per_record_total",
                "group_last_lagging_s",
            )
            print(json.dumps({label: {k: phase[k] for k in shown}}), flush=True)
    return result


def run_config(args: argparse.Namespace, label: str) -> dict[str, Any]:
    profile, instances = CONFIGS[label]
    with tempfile.TemporaryDirectory(prefix=f"mlops-compare-{label}-") as state:
        stack = make_stack(args, Path(state), profile, instances)
        started = time.monotonic()
        result: dict[str, Any] = {"profile": profile, "instances": instances}
        try:
            stack.up()
            result["up_s"] = round(time.monotonic() - started, 1)
            result |= asyncio.run(measure(args, stack, label))
        except Exception as error:  # reported in the table; the next stack still runs
            result["error"] = f"{type(error).__name__}: {error}"
            print(json.dumps({label: {"error": result["error"]}}), flush=True)
        finally:
            stack.down()
            logs = RESULTS / "profile_compare-logs" / label
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(Path(state) / "logs", logs, dirs_exist_ok=True)
            server_log = Path(state) / "postgres" / "server.log"  # PostgreSQL's own log, outside logs/
            if server_log.exists():
                shutil.copy(server_log, logs / "postgres-server.log")
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Medians over the repeats of each kind of phase."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for phase in result.get("phases", []):
        kinds.setdefault(str(phase["phase"]), []).append(phase)
    out: dict[str, Any] = {}
    for kind, phases in kinds.items():
        components = sorted({c for p in phases for c in p["cpu_ms_per_record"]})
        last_groups = [next(iter(p["group_last_lagging_s"]), "-") for p in phases]
        out[kind] = {
            "n": len(phases),
            "records_per_s": statistics.median(p["records_per_s"] for p in phases),
            "records_per_s_all": [p["records_per_s"] for p in phases],
            "cpu_ms_per_record": {
                c: round(statistics.median(p["cpu_ms_per_record"].get(c, 0.0) for p in phases), 2)
                for c in components
            },
            "cpu_ms_per_record_total": statistics.median(p["cpu_ms_per_record_total"] for p in phases),
            # Rows PostgreSQL read by sequential scans of the audit table, each repeat (cluster only).
            "audit_events_seq_rows": [_seq_rows(p, "audit.audit_events") for p in phases],
            "last_group": max(set(last_groups), key=last_groups.count),
            "features_online_p50_s": statistics.median(p["features_online_p50_s"] or 0 for p in phases),
            "memory_total_median_mib": statistics.median(p["memory"]["total_median_mib"] for p in phases),
            "memory_total_peak_mib": max(p["memory"]["total_peak_mib"] for p in phases),
            "memory_mib": {
                c: statistics.median(p["memory"]["per_component_mib"][c]["median"] for p in phases)
                for c in phases[0]["memory"]["per_component_mib"]
            },
        }
    return out


def _seq_rows(phase: dict[str, Any], table: str) -> int | None:
    if "postgres" not in phase:
        return None
    return int(phase["postgres"]["deltas"].get(table, {}).get("seq_tup_read", 0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    labels = [c for c in args.configs.split(",") if c]
    unknown = [c for c in labels if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s): {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    results = {}
    for label in labels:
        results[label] = run_config(args, label)
        results[label]["summary"] = summarise(results[label])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results},
                                       indent=2) + "\n")  # fmt: skip
    print(render(results))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
