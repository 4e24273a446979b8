"""Issue 17, item 8: `mlops produce` shows how far it is. Off a terminal (a log, a CI job) that is a
line per tenth of the run on stderr; stdout stays the JSON summary a script reads."""

from __future__ import annotations

import json
import re

import pytest

from workbench import demo_producer


def test_progress_goes_to_stderr_by_tenths_and_the_summary_to_stdout(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rows", "40", "--rate", "0", "--label-delay-s", "0", "--bootstrap", kafka_bootstrap]
    assert demo_producer.main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["records"] == 40 and summary["labels"] == 40
    sent = [int(m.group(1)) for m in re.finditer(r"^sent (\d+)/40 records", captured.err, re.M)]
    assert sent == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 40], captured.err
    # --quiet: nothing but the summary
    assert demo_producer.main([*argv, "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "sent " not in quiet.err and json.loads(quiet.out)["records"] == 40
