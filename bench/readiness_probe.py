"""What one readiness probe costs the prober: a client per probe (`httpx.get`, what infra/processes.py
did) against the process's one client (`probe_client`, what it does), in the same run.

Each round sends `--probes` probes each way, the ways alternating, to a port where nothing listens (a
service still starting, as `mlops up` probes it every 0.3 s); the process's own CPU per probe.
Reported: each round's figures, then the medians and their ratio. Nothing here asserts on timings.

    .venv/bin/python -m bench.readiness_probe [--rounds 5] [--probes 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import statistics
from collections.abc import Callable

import httpx

from infra.processes import probe_client


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms_per_probe(probe: Callable[[str], object], url: str, probes: int) -> float:
    started = cpu_s()
    for _ in range(probes):
        with contextlib.suppress(httpx.HTTPError):
            probe(url)
    return (cpu_s() - started) * 1000 / probes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    if args.rounds < 1 or args.probes < 1:
        parser.error("--rounds and --probes must be at least 1")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/ready"
    ways: dict[str, Callable[[str], object]] = {
        "client_per_probe": lambda u: httpx.get(u, timeout=2.0),
        "one_client": lambda u: probe_client().get(u),
    }
    figures: dict[str, list[float]] = {way: [] for way in ways}
    for round_ in range(args.rounds):
        for way in list(ways) if round_ % 2 == 0 else list(reversed(ways)):
            figures[way].append(round(ms_per_probe(ways[way], url, args.probes), 3))
        last = {way: values[-1] for way, values in figures.items()}
        print(json.dumps({"round": round_, "cpu_ms_per_probe": last}), flush=True)
    medians = {way: statistics.median(values) for way, values in figures.items()}
    ratio = medians["one_client"] / medians["client_per_probe"]
    print(json.dumps({"median_cpu_ms_per_probe": medians, "ratio_one_client_to_per_probe": round(ratio, 4)}))


if __name__ == "__main__":
    main()
