"""The benchmarks' way to run the stack with one of its settings changed (`--setting`, `--compare`),
and what they refuse."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bench import platform_idle, platform_throughput
from bench.platform_stack import Stack


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
    "text", ["MLOPS_QUIET_FETCH_WAIT_MS", "QUIET=50", "mlops_quiet=50", "MLOPS_X-Y=1", "=50", "MLOPS_ A=1"]
)
def test_a_setting_that_is_not_mlops_name_equals_value_is_refused(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for parse, flag in (
        (platform_throughput.parse_args, "--setting"),
        (platform_idle.parse_args, "--compare"),
    ):
        with pytest.raises(SystemExit) as exited:
            parse([flag, text])
        assert exited.value.code == 2 and "MLOPS_NAME=VALUE" in capsys.readouterr().err


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
