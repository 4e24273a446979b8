"""`python -m services.audit.cli`: verify (exit 0 intact, 1 broken, 2 cannot run), summary, lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.audit.cli import main
from services.audit.handlers import AuditService
from tests.unit.test_audit_support import as_attacker, captured, lineage_flow, new_store


@pytest.fixture
def url(tmp_path: Path) -> str:
    store = new_store(tmp_path)
    AuditService(store).capture(captured(lineage_flow() + lineage_flow("pred-2", version="8"), topic="flow"))
    store.dispose()
    return f"sqlite:///{tmp_path / 'audit.db'}"


def test_verify_reports_intact_then_the_first_broken_link(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--database-url", url, "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["checked"] == 10
    from services.audit.adapters.store import SqlAuditStore

    as_attacker(SqlAuditStore(url), "UPDATE audit_events SET producer = 'nobody' WHERE seq = 6")
    assert main(["verify", "--database-url", url]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False and report["broken_at"] == 6 and report["checked"] == 5


def test_summary_and_lineage(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--database-url", url]) == 0
    assert json.loads(capsys.readouterr().out)["events_by_type"]["ModelTrained"] == 2
    assert main(["lineage", "pred-2", "--database-url", url]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == "8"


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--database-url", "sqlite:////nonexistent/dir/audit.db"],
        ["verify", "--database-url", "not a url"],
        ["summary", "--database-url", "sqlite:///{empty}"],
    ],
)
def test_a_database_that_is_not_there_is_exit_2_and_is_not_created(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main([a.format(empty=empty) for a in args]) == 2
    assert "error:" in capsys.readouterr().err
    assert not Path("/nonexistent/dir/audit.db").exists()


def test_lineage_of_an_unknown_prediction_is_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "' OR 1=1 --", "--database-url", url]) == 2
    assert "no prediction" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [[], ["frobnicate"], ["verify", "--workers", "0"], ["verify", "--workers", "x"]]
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2


def test_the_module_runs_as_a_command(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.audit.cli", "verify", "--database-url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["intact"] is True
