"""Serving latency inside the whole-platform benchmark: a champion is trained from what the max-rate
phase streamed, then an open-loop load generator (bench/serving_loadgen.py, its own process) asks
for predictions by entity key at a fixed rate, once with the platform idle (the baseline) and once
while a fixed-rate ingest phase runs."""

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

from bench.platform_stack import Stack
from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER

# The load generator's first seconds, reported apart: it opens up to one connection per request in
# flight then (up to 48 requests over 25 ms in its first second, with the platform idle), which a
# client that keeps its connections does not pay.
WARMUP_S = 2.0


def client_key(stack: Stack) -> str:
    keys = json.loads((stack.state / "secrets" / "api-keys.json").read_text())
    return str(keys["dev-client"]["key"])


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
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    Path(bodies.name).unlink(missing_ok=True)
    return dict(json.loads(out.decode().strip().splitlines()[-1]))
