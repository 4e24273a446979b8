"""The garbage collector in a service's own process: what it stops the service for, and keeping what
lives for good out of its sight.

A full (generation 2) collection walks every tracked object, and a service holds millions that live as
long as the process: Feast, pandas, MLflow, spaCy, a model. While it walks, nothing else runs: a serving
request waits, however high its CPU priority. So:
- `settle()` collects, then freezes (gc.freeze) what is alive after a start and after each model swap
  (unfreezing first then, so a replaced model is not kept), so later full collections skip it. Only
  in a service's own process (`servicekit.runner` says so): a process hosting apps, as the tests do,
  would keep each of them for good.
- a service's process collects its young generation less often than Python's default (`own_process`);
- `watch_pauses()` times every full collection into `mlops_gc_pause_seconds` (/metrics), so a tail
  that comes from the collector shows as such.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

GC_PAUSE_SECONDS = Histogram(
    "mlops_gc_pause_seconds",
    "Time a full (generation 2) garbage collection stopped the service",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

_own_process = False
_watching = False


def own_process(young_threshold: int | None = None) -> None:
    """This process runs one service and nothing else (called by servicekit.runner.run_service), and
    collects its young generation every `young_threshold` allocations (None: Python's 700).

    A batch of 500 decoded records allocates hundreds of thousands of objects that die by reference
    count within the batch; at Python's 700, the collector ran a young collection every few hundred
    of them and, every hundred young ones, a full collection: 4 to 13 per service in 20,000 records at
    1,000/s, drift's 140 ms each (wall time, at its lower priority), and none at 10,000
    (docs/benchmarks.md). Cyclic garbage waits a little longer to be freed."""
    global _own_process
    _own_process = True
    if young_threshold is not None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


def is_own_process() -> bool:
    return _own_process


def settle(*, refreeze: bool = False) -> bool:
    """Collect, then freeze what is alive; False (and nothing done) outside a service's own process.
    `refreeze`: unfreeze first, so that what was frozen and has since become cyclic garbage (a replaced
    model held by a cycle) is collected too, at the cost of one full walk of the heap."""
    if not _own_process:
        return False
    if refreeze:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    return True


def watch_pauses(service: str) -> None:
    """Time each full collection from now on (once per process)."""
    global _watching
    if _watching:
        return
    _watching = True
    pauses = GC_PAUSE_SECONDS.labels(service)
    started = [0.0]

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:  # the young generations take microseconds
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_collection)
