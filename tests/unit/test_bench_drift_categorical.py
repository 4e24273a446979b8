"""bench/drift_categorical.py: garbage arguments are refused with a reason, and a small run writes the
figures of both tests and of the numeric monitors, with the command that reproduces them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import drift_categorical


@pytest.mark.parametrize(
    "args",
    [["--alpha", "0"], ["--alpha", "1.5"], ["--alpha", "-1e-4"], ["--seeds", "0"], ["--at", "7000"],
     ["--reference", "5"], ["--streams", "-3"], ["--alpha", "abc"]],
)  # fmt: skip
def test_garbage_arguments_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        drift_categorical.main([*args, "--out", "/nonexistent/x.json"])
    assert refused.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_small_run_reports_both_tests(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    drift_categorical.main(
        ["--seeds", "2", "--rows", "3000", "--at", "2000", "--streams", "3", "--stream-rows", "6000",
         "--alpha", "0.01", "--out", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["alpha"] == {"goodness_of_fit": 1e-7, "homogeneity": 0.01}
    assert result["reference"] == {"goodness_of_fit": 500, "homogeneity": 2000}
    assert set(result["delays"]["cases"]) == set(drift_categorical.CASES)
    stationary = result["stationary"]
    assert stationary["streams"] == 3 and stationary["rows_each"] == 6000
    for test in (*drift_categorical.TESTS, drift_categorical.NUMERIC):
        assert stationary[test]["alarms"] == len(stationary[test]["alarms_at"])
    assert "--alpha 0.01" in result["command"]
