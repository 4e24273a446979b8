"""The feature-read benchmark runs both paths on one store and refuses empty runs (timings are not
asserted: they are the benchmark's to report)."""

from __future__ import annotations

import pytest

from bench import serving_feature_read


def test_it_times_both_paths_and_gives_their_ratio() -> None:
    result = serving_feature_read.main(["--records", "20", "--reads", "20", "--runs", "2"])
    assert set(result) == {"feast_us_per_read", "direct_us_per_read", "direct_over_feast"}
    assert result["feast_us_per_read"] > 0 and result["direct_us_per_read"] > 0


@pytest.mark.parametrize("flag", ["--records", "--reads", "--runs"])
def test_it_refuses_empty_runs(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serving_feature_read.parse_args([flag, "0"])
    assert "must be at least 1" in capsys.readouterr().err
