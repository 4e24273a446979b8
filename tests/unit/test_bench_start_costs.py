"""The start-cost benches (bench/kafka_class_archive.py, bench/bus_access_tool.py) refuse garbage
arguments with their usage before they start any JVM."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.settings import REPO_ROOT


@pytest.mark.parametrize("bench", ["kafka_class_archive", "bus_access_tool"])
@pytest.mark.parametrize("rounds", ["0", "-3", "many", "1000"])
def test_garbage_rounds_get_the_usage_not_a_traceback(bench: str, rounds: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--rounds", rounds],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr and "Traceback" not in done.stderr and "java" not in done.stdout
