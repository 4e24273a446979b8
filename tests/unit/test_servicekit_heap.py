"""The collector in a service's own process (servicekit/heap.py): full collections are timed into
/metrics, and the heap is frozen only in a service's own process, never in one hosting apps (tests)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from infra.settings import REPO_ROOT
from servicekit import heap


def pauses(service: str) -> float:
    return REGISTRY.get_sample_value("mlops_gc_pause_seconds_count", {"service": service}) or 0.0


def test_a_process_hosting_apps_freezes_nothing() -> None:
    assert not heap.is_own_process()
    before = gc.get_freeze_count()
    assert heap.settle() is False and gc.get_freeze_count() == before


def test_full_collections_are_timed_and_young_ones_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_watching", False)
    callbacks = list(gc.callbacks)
    enabled = gc.isenabled()
    gc.disable()  # only the collections below, none of the collector's own in between
    try:
        heap.watch_pauses("probe")
        heap.watch_pauses("probe")  # once per process
        assert len(gc.callbacks) == len(callbacks) + 1
        before = pauses("probe")
        gc.collect(0)
        gc.collect(1)
        assert pauses("probe") == before
        gc.collect()
        assert pauses("probe") == before + 1
        total = REGISTRY.get_sample_value("mlops_gc_pause_seconds_sum", {"service": "probe"}) or 0.0
        assert 0 < total < 60
    finally:
        gc.callbacks[:] = callbacks
        if enabled:
            gc.enable()


CHILD = """
import gc, json
from servicekit import heap
kept = [[i] for i in range(50_000)]  # lists: always tracked by the collector
default = gc.get_threshold()
heap.own_process(12_345)
settled = heap.settle()
print(json.dumps({"settled": settled, "frozen": gc.get_freeze_count(), "default": default,
                  "threshold": gc.get_threshold()}))
"""


def test_a_services_own_process_freezes_what_is_alive_and_collects_young_objects_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=dict(os.environ),
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    seen = json.loads(out.stdout)
    assert seen["settled"] is True and seen["frozen"] >= 50_000
    # Young collections every 12,345 allocations; the older generations keep Python's ratios.
    assert seen["threshold"] == [12_345, *seen["default"][1:]] and seen["default"][0] < 12_345


def test_a_young_threshold_outside_its_bounds_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from tests.support import probe_settings

    for value in ("0", "99", "1000001", "many"):
        monkeypatch.setenv("MLOPS_GC_YOUNG_THRESHOLD", value)
        with pytest.raises(ValidationError, match=r"(?i)gc_young_threshold"):
            probe_settings("127.0.0.1:1")
