"""The benchmarks' way to run the stack with one of its settings changed (`--setting`, `--compare`),
and what they refuse."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import platform_idle, platform_stack, platform_throughput
from bench.platform_stack import Stack, jit_ms, jit_seconds, settle


def test_a_setting_reaches_the_stacks_environment_and_wins_over_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_QUIET_FETCH_WAIT_MS", "999")  # this process's MLOPS_* never leak in
    args = platform_throughput.parse_args(
        ["--setting", "MLOPS_QUIET_FETCH_WAIT_MS=50", "--setting", "MLOPS_GC_YOUNG_THRESHOLD=700"]
    )
    with tempfile.TemporaryDirectory() as folder:
        env = platform_throughput.make_stack(args, Path(folder), "local", 1).env()
        plain = Stack(Path(folder), 19_692, 19_701).env()
    assert env["MLOPS_QUIET_FETCH_WAIT_MS"] == "50" and env["MLOPS_GC_YOUNG_THRESHOLD"] == "700"
    assert "MLOPS_QUIET_FETCH_WAIT_MS" not in plain


@pytest.mark.parametrize(
    "text",
    ["MLOPS_QUIET_FETCH_WAIT_MS", "QUIET=50", "mlops_quiet=50", "MLOPS_X-Y=1", "=50", "MLOPS_ A=1",
     "SERVING_=1", "PATH=/tmp", "serving_outbox_window_ms=0"],
)  # fmt: skip
def test_a_setting_that_is_not_mlops_name_equals_value_is_refused(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for parse, flag in (
        (platform_throughput.parse_args, "--setting"),
        (platform_idle.parse_args, "--compare"),
    ):
        with pytest.raises(SystemExit) as exited:
            parse([flag, text])
        assert exited.value.code == 2 and "MLOPS_NAME=VALUE or SERVICE_NAME=VALUE" in capsys.readouterr().err


def test_the_idle_bench_compares_one_setting_and_refuses_empty_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = platform_idle.parse_args(["--compare", "MLOPS_QUIET_FETCH_WAIT_MS=50", "--repeats", "1"])
    assert args.setting == {"MLOPS_QUIET_FETCH_WAIT_MS": "50"}
    assert platform_idle.parse_args([]).setting == {}
    for bad in (["--repeats", "0"], ["--windows", "0"], ["--window-s", "0"], ["--settle-s", "-1"]):
        with pytest.raises(SystemExit):
            platform_idle.parse_args(bad)
        assert "must be" in capsys.readouterr().err


def test_medians_are_per_component_over_windows() -> None:
    windows = [
        {"kafka": 80.0, "total": 100.0},
        {"kafka": 60.0, "total": 90.0},
        {"kafka": 70.0, "total": 300.0},
    ]
    assert platform_idle.medians(windows) == {"kafka": 70.0, "total": 100.0}


def test_a_services_own_setting_is_taken_with_its_prefix() -> None:
    args = platform_throughput.parse_args(["--setting", "SERVING_OUTBOX_WINDOW_MS=0"])
    with tempfile.TemporaryDirectory() as folder:
        env = platform_throughput.make_stack(args, Path(folder), "local", 1).env()
    assert env["SERVING_OUTBOX_WINDOW_MS"] == "0"


def test_cpu_per_request_counts_the_warmup_and_each_component() -> None:
    load = {"sent": 900, "warmup": {"sent": 100}}
    cost = platform_throughput.per_request(
        {"kafka": 1.0, "serving": 2.0}, {"kafka": 3.0, "serving": 2.5}, load
    )
    assert cost == {"kafka": 2.0, "serving": 0.5, "total": 2.5}
    assert (
        platform_throughput.per_request({"kafka": 1.0}, {"kafka": 2.0}, {})["kafka"] == 1000.0
    )  # no division by 0


def test_settle_waits_until_the_stack_is_quiet_or_gives_up() -> None:
    # CPU seconds read at each 10 ms window's end: 100 cores busy, twice, then 0.1 core (quiet)
    readings = iter([0.0, 1.0, 2.0, 2.001, 2.002])
    waited = asyncio.run(
        settle({"kafka": 1}, below_cores=0.3, window_s=0.01, read=lambda _: {"kafka": next(readings)})
    )
    assert waited < 1.0 and next(readings) == 2.002  # stopped at the first quiet window
    always_busy = iter(float(i) for i in range(10_000))
    assert (
        asyncio.run(settle({"k": 1}, window_s=0.01, timeout_s=0.05, read=lambda _: {"k": next(always_busy)}))
        >= 0.05
    )


def test_jit_time_counts_each_compiler_threads_growth_and_never_a_gone_thread_as_negative() -> None:
    before = {("kafka", 11): 1.0, ("kafka", 12): 2.0, ("other-jvm", 5): 0.5}
    after = {("kafka", 11): 1.5, ("kafka", 13): 0.25, ("other-jvm", 5): 0.5}  # 12 ended, 13 began
    assert jit_ms(before, after, 10) == {"kafka": 75.0, "other-jvm": 0.0}
    assert jit_ms(after, before, 10) == {"kafka": 200.0, "other-jvm": 0.0}  # 11 "shrank": not negative


def test_a_python_process_has_no_jit_compiler_threads_and_a_dead_pid_is_skipped() -> None:
    assert jit_seconds({"me": os.getpid()}) == {}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert jit_seconds({"gone": dead.pid}) == {}


def test_each_run_streams_fresh_applicants_unless_a_seed_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    # One fixed seed replayed one sample with a rare stretch in it every run: its false alarm recurred.
    seeds = {platform_throughput.parse_args([]).seed for _ in range(5)}
    assert len(seeds) > 1 and all(0 <= seed < platform_stack.SEED_LIMIT for seed in seeds)
    assert platform_throughput.parse_args(["--seed", "11"]).seed == 11
    for bad in ("-1", "eleven", "1.5", str(2**31), ""):
        with pytest.raises(SystemExit) as exited:
            platform_throughput.parse_args(["--seed", bad])
        assert exited.value.code == 2 and "--seed" in capsys.readouterr().err
