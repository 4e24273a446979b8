"""`python -m services.audit.cli`: verify (exit 0 intact, 1 broken, 2 cannot run), summary, lineage.
Verify reads Kafka through `KafkaLog`; here an in-memory log stands in for it (the e2e test uses a
real broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.audit import verification
from services.audit.cli import main
from services.audit.domain.anchors import PublishedCheckpoint
from services.audit.handlers import AuditService
from services.audit.signing import CheckpointSigner, load_private_key
from tests.unit.test_audit_support import MemoryLog, as_attacker, captured, lineage_flow, new_store


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store of 10 rows, their records in the (fake) Kafka log, and a signed checkpoint of them."""
    key_file = tmp_path / "secrets" / "audit-signing.key"
    signer = CheckpointSigner(load_private_key(key_file, create=True))
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(key_file))
    store = new_store(tmp_path)
    audit, log = AuditService(store), MemoryLog()
    audit.capture(log.add(captured(lineage_flow() + lineage_flow("pred-2", version="8"), topic="flow")))
    event = audit.make_checkpoint(force=True)
    assert event is not None
    payload = signer.sign(event.payload, "audit", store.stored_hash(1) or "")
    log.published.append(PublishedCheckpoint(payload, "audit.checkpoints:0:0"))
    monkeypatch.setattr(verification, "KafkaLog", lambda *_: log)
    store.dispose()
    return f"sqlite:///{tmp_path / 'audit.db'}"


def test_verify_reports_intact_then_the_first_broken_link(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--database-url", url, "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 10 and report["anchors_checked"] == 1 and report["kafka_rows_checked"] == 10
    from services.audit.adapters.store import SqlAuditStore

    as_attacker(SqlAuditStore(url), "UPDATE audit_events SET producer = 'nobody' WHERE seq = 6")
    assert main(["verify", "--database-url", url]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False and report["broken_at"] == 6 and report["checked"] == 5
    assert any("append-only guard" in p for p in report["problems"])


def test_verify_without_the_public_key_finds_no_trusted_checkpoint(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secrets" / "audit-signing.key.pub").unlink()
    (tmp_path / "secrets" / "audit-signing.key").unlink()
    assert main(["verify", "--database-url", url]) == 1
    assert "signature does not verify" in json.loads(capsys.readouterr().out)["reason"]


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
        [sys.executable, "-m", "services.audit.cli", "summary", "--database-url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chain_length"] == 10


def test_verify_without_kafka_cannot_run_and_never_says_intact(url: str) -> None:
    command = [sys.executable, "-m", "services.audit.cli", "verify", "--database-url", url]
    done = subprocess.run(
        [*command, "--kafka", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "AUDIT_VERIFY_TIMEOUT_S": "3"},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "did not answer" in done.stderr and "intact" not in done.stdout
