"""Serving latency inside the whole-platform benchmark: a champion is trained from what the max-rate
phase streamed, then an open-loop load generator (bench/serving_loadgen.py, its own process) asks
for predictions by entity key at a fixed rate, once with the platform idle (the baseline) and once
while a fixed-rate ingest phase runs.

Where a slow answer spent its time is told apart three ways: the load generator's latency (from when
a request was due), serving's own histograms read from its /metrics before and after the load (the
whole request inside the app, and the handler's feature read and scoring), and each second's
run-queue wait of serving and of the load generator (bench/runqueue.py). A request slow at the client
but not inside the app waited outside it: for a core, in the event loop, or in the socket queues."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.platform_stack import Stack
from bench.serving_loadgen import SLOW_MS
from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER

# The load generator's first seconds, reported apart: it opens up to one connection per request in
# flight then (up to 48 requests over 25 ms in its first second, with the platform idle), which a
# client that keeps its connections does not pay.
WARMUP_S = 2.0


# Serving's histograms of one /predict request: the whole request inside the app (the kit's HTTP
# middleware) and the handler's feature read and scoring.
INSIDE = {
    "app": ("mlops_http_request_seconds", {"service": "serving", "route": "/predict", "status": "200"}),
    "handler": ("serving_prediction_seconds", {"source": "entity"}),
}
SLOW_S = SLOW_MS / 1000  # the load generator's threshold, in the histograms' seconds


def client_key(stack: Stack, role: str = "client") -> str:
    keys = json.loads((stack.state / "secrets" / "api-keys.json").read_text())
    return str(keys[f"dev-{role}"]["key"])


def inside_counts(stack: Stack) -> dict[str, tuple[float, float]] | None:
    """(requests, requests over SLOW_S) so far in each of INSIDE's histograms; None if /metrics does
    not answer."""
    try:
        answer = httpx.get(
            f"{serving_url(stack)}/metrics", headers={"X-API-Key": client_key(stack, "ops")}, timeout=10
        )
    except httpx.HTTPError:
        return None
    return parse_inside(answer.text) if answer.status_code == 200 else None


def parse_inside(text: str) -> dict[str, tuple[float, float]]:
    found = {name: [0.0, 0.0] for name in INSIDE}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, (metric, labels) in INSIDE.items():
                if not labels.items() <= sample.labels.items():
                    continue
                if sample.name == f"{metric}_count":
                    found[name][0] += sample.value
                    found[name][1] += sample.value
                elif sample.name == f"{metric}_bucket" and float(sample.labels["le"]) == SLOW_S:
                    found[name][1] -= sample.value
    return {name: (total, slow) for name, (total, slow) in found.items()}


def inside_delta(
    before: dict[str, tuple[float, float]] | None, after: dict[str, tuple[float, float]] | None
) -> dict[str, dict[str, int]] | None:
    if before is None or after is None:
        return None
    return {
        name: {"requests": int(after[name][0] - before[name][0]),
               f"over_{SLOW_S * 1000:g}_ms": int(after[name][1] - before[name][1])}
        for name in INSIDE
    }  # fmt: skip


def serving_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.first_service_port + SERVICE_ORDER.index('serving')}"


def train_champion(stack: Stack, timeout_s: float = 600.0) -> dict[str, Any] | None:
    """Ask for a training run and wait until serving has a champion; None if none came in time."""
    stack.mlops("train", "request", check=False)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=serving_url(stack), headers={"X-API-Key": client_key(stack)}) as http:
        while time.monotonic() < deadline:
            try:
                champion = http.get("/model", timeout=10).json().get("champion")
            except (httpx.HTTPError, ValueError):
                champion = None
            if champion:
                return dict(champion)
            time.sleep(2)
    return None


async def load(stack: Stack, entity_ids: list[str], rate: float, duration_s: float) -> dict[str, Any]:
    """Run the load generator at `rate` requests/s for WARMUP_S (reported apart), then for `duration_s`;
    its JSON summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as bodies:
        json.dump([{"entity_id": e} for e in entity_ids], bodies)
    command = [
        sys.executable, "-m", "bench.serving_loadgen", f"{serving_url(stack)}/predict", bodies.name,
        "--rate", str(rate), "--duration", str(duration_s), "--header", f"X-API-Key:{client_key(stack)}",
        "--warmup", str(WARMUP_S),
    ]  # fmt: skip
    serving_pid = stack.pids().get("serving")
    if serving_pid:  # each second's run-queue wait of serving and of the load generator
        command += ["--watch-pid", str(serving_pid)]
    before = await asyncio.to_thread(inside_counts, stack)
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    after = await asyncio.to_thread(inside_counts, stack)
    Path(bodies.name).unlink(missing_ok=True)
    result = dict(json.loads(out.decode().strip().splitlines()[-1]))
    result["inside_serving"] = inside_delta(before, after)  # warm-up included, as its requests count
    return result
