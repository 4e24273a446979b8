"""Open-loop load generator (run as its own process by bench.serving_latency): sends POSTs at a fixed
rate whatever the server does, and measures each latency from the moment the request was DUE, so a
stalled server is charged for the requests it delayed (no coordinated omission).

`python -m bench.serving_loadgen URL BODIES.json --rate 500 --duration 20 [--header K:V ...]`
prints one JSON object: sent, ok, errors by status, achieved rate, p50/p90/p99/max in ms, and the
seconds with the most requests over 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from statistics import quantiles
from typing import Any

import aiohttp


async def run(
    url: str, bodies: list[bytes], rate: float, duration: float, headers: dict[str, str]
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    by_second: defaultdict[int, list[float]] = defaultdict(list)  # by the second a request was due
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(body: bytes, due: float) -> None:
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - due)
            by_second[int(due - start)].append(latencies[-1])

        total = int(rate * duration)
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(bodies[i % len(bodies)], due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    cuts = quantiles([x * 1000 for x in latencies], n=100, method="inclusive")
    return {
        "sent": total,
        "ok": statuses.get("200", 0),
        "statuses": dict(statuses),
        "achieved_rps": total / elapsed,
        "p50_ms": cuts[49],
        "p90_ms": cuts[89],
        "p99_ms": cuts[98],
        "max_ms": max(latencies) * 1000,
        "worst_seconds": worst_seconds(by_second),
    }


def worst_seconds(
    by_second: dict[int, list[float]], over_ms: float = 25.0, top: int = 3
) -> list[dict[str, Any]]:
    """The seconds of the run with the most requests slower than `over_ms`: whether a tail is a few
    stalls (a model swap, a collection) or spread over the run."""
    slow = {s: [x for x in v if x * 1000 > over_ms] for s, v in by_second.items()}
    ranked = sorted((s for s in slow if slow[s]), key=lambda s: -len(slow[s]))[:top]
    return [{"second": s, f"over_{over_ms:g}_ms": len(slow[s]), "max_ms": round(max(slow[s]) * 1000, 1)}
            for s in ranked]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.serving_loadgen")
    p.add_argument("url")
    p.add_argument("bodies", type=Path, help="JSON list of request bodies (objects), used in turn")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--header", action="append", default=[], help="K:V")
    args = p.parse_args()
    bodies = [json.dumps(b).encode() for b in json.loads(args.bodies.read_text())]
    headers = dict(h.split(":", 1) for h in args.header) | {"Content-Type": "application/json"}
    print(json.dumps(asyncio.run(run(args.url, bodies, args.rate, args.duration, headers))))


if __name__ == "__main__":
    main()
