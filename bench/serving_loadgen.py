"""Open-loop load generator (run as its own process by bench.serving_latency): sends POSTs at a fixed
rate whatever the server does, and measures each latency from the moment the request was DUE, so a
stalled server is charged for the requests it delayed (no coordinated omission).

`python -m bench.serving_loadgen URL BODIES.json --rate 500 --duration 20 [--header K:V ...]`
prints one JSON object: sent, ok, errors by status, achieved rate, p50/p90/p99/max in ms, the
seconds with the most requests over 25 ms, and (with `--warmup S`) the first S seconds apart.
With `--watch-pid PID` (the server's), every second also gets how long the server's threads and the
load generator's own waited for a CPU (bench/runqueue.py): whether a slow second was the server
working or the server (or the client) waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import aiohttp

from bench.runqueue import RunQueueSampler
from servicekit.cli_args import non_negative_float, positive_float, positive_int

SLOW_MS = 25.0
"""A request slower than this counts as slow (`over_25_ms`, `worst_seconds`): the serving target's p99."""


async def run(
    url: str,
    bodies: list[bytes],
    rate: float,
    duration: float,
    headers: dict[str, str],
    warmup: float = 0.0,
    watch_pid: int | None = None,
) -> dict[str, Any]:
    """`warmup` seconds at the same rate first, reported apart: a new client opens its connections
    then (up to one per request in flight), which a client that keeps its connections never pays.
    `watch_pid`: the server's process, whose run-queue wait is sampled with the load generator's."""
    latencies: list[float] = []
    warming: list[float] = []
    statuses: Counter[str] = Counter()
    by_second: defaultdict[int, list[float]] = defaultdict(list)  # by the second a request was due
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(body: bytes, due: float, counted: bool) -> None:
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    if counted:
                        statuses[str(response.status)] += 1
            except aiohttp.ClientError as exc:
                if counted:
                    statuses[type(exc).__name__] += 1
            latency = time.perf_counter() - due
            if counted:
                latencies.append(latency)
                by_second[int(due - measured_from)].append(latency)
            else:
                warming.append(latency)

        skipped, total = int(rate * warmup), int(rate * duration)
        tasks: list[asyncio.Task[None]] = []
        sampler = RunQueueSampler({"server": watch_pid, "loadgen": os.getpid()} if watch_pid else {})
        sampler.start()
        start = time.perf_counter()
        measured_from = start + skipped / rate
        for i in range(skipped + total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(bodies[i % len(bodies)], due, i >= skipped)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - measured_from
        await sampler.stop()
    cuts = quantiles([x * 1000 for x in latencies], n=100, method="inclusive")
    result: dict[str, Any] = {
        "sent": total,
        "ok": statuses.get("200", 0),
        "statuses": dict(statuses),
        "achieved_rps": total / elapsed,
        "p50_ms": cuts[49],
        "p90_ms": cuts[89],
        "p99_ms": cuts[98],
        "max_ms": max(latencies) * 1000,
        "over_25_ms": sum(x * 1000 > SLOW_MS for x in latencies),
        "worst_seconds": worst_seconds(by_second),
    }
    if watch_pid:
        waits = sampler.per_second(measured_from)
        result["runqueue_ms_per_s"] = {name: spread(w, int(duration)) for name, w in waits.items()}
        for second in result["worst_seconds"]:
            second.update({f"{name}_runqueue_ms": round(w.get(second["second"], 0.0), 1)
                           for name, w in waits.items()})  # fmt: skip
    if warming:
        warm_cuts = quantiles([x * 1000 for x in warming], n=100, method="inclusive")
        result["warmup"] = {
            "seconds": warmup,
            "sent": skipped,
            "p99_ms": warm_cuts[98],
            "max_ms": max(warming) * 1000,
            "over_25_ms": sum(x * 1000 > SLOW_MS for x in warming),
        }
    return result


def worst_seconds(
    by_second: dict[int, list[float]], over_ms: float = SLOW_MS, top: int = 3
) -> list[dict[str, Any]]:
    """The seconds of the run with the most requests slower than `over_ms`: whether a tail is a few
    stalls (a model swap, a collection) or spread over the run."""
    slow = {s: [x for x in v if x * 1000 > over_ms] for s, v in by_second.items()}
    ranked = sorted((s for s in slow if slow[s]), key=lambda s: -len(slow[s]))[:top]
    return [{"second": s, f"over_{over_ms:g}_ms": len(slow[s]), "max_ms": round(max(slow[s]) * 1000, 1)}
            for s in ranked]  # fmt: skip


def spread(waits: dict[int, float], seconds: int) -> dict[str, float]:
    """Median and max over the measured seconds (a second without a sample counts as 0 ms)."""
    values = sorted(waits.get(s, 0.0) for s in range(max(seconds, 1)))
    return {"median": round(median(values), 1), "max": round(values[-1], 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serving_loadgen")
    p.add_argument("url")
    p.add_argument("bodies", type=Path, help="JSON list of request bodies (objects), used in turn")
    p.add_argument("--rate", type=positive_float, default=500.0)
    p.add_argument("--duration", type=positive_float, default=20.0)
    p.add_argument("--header", action="append", default=[], help="K:V")
    p.add_argument(
        "--warmup", type=non_negative_float, default=0.0, help="seconds sent first and reported apart"
    )
    p.add_argument("--watch-pid", type=positive_int, help="the server's pid: its run-queue wait per second")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    bodies = [json.dumps(b).encode() for b in json.loads(args.bodies.read_text())]
    headers = dict(h.split(":", 1) for h in args.header) | {"Content-Type": "application/json"}
    result = run(args.url, bodies, args.rate, args.duration, headers, args.warmup, args.watch_pid)
    print(json.dumps(asyncio.run(result)))


if __name__ == "__main__":
    main()
