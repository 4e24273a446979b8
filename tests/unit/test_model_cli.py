"""`mlops model rollback`: flags refused in one line (exit 2), one idempotency key for every retry of
one command, refusals reported with their code (exit 1), and the rollback line of `mlops watch`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.events import (
    CanaryChanged,
    CanaryChangedPayload,
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
)
from infra import cli, model_cli
from infra.watch import describe


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model", "rollback"], "the following arguments are required: --reason"),
        (["model", "rollback", "--reason", "  "], "argument --reason: must say why (not blank)"),
        (["model", "rollback", "--reason", "x", "--to", "0"], "argument --to: must be positive, got 0"),
        (["model", "rollback", "--reason", "x" * 501], "argument --reason: at most 500 characters"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def run(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answers: list[Any],
    argv: list[str],
    action: str = "rollback",
) -> list[Any]:
    calls: list[Any] = []

    def post(url: str, json: Any, headers: dict[str, str], timeout: float) -> httpx.Response:
        calls.append((url, json, headers["Idempotency-Key"]))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer[0], json=answer[1])

    monkeypatch.setattr(model_cli.httpx, "post", post)
    monkeypatch.setattr(model_cli.time, "sleep", lambda _: None)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    calls.append(cli.main(["model", action, "--api-key", "k", "--url", "http://t", *argv]))
    return calls


def test_retries_carry_the_same_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    done = (200, {"champion": "1", "replayed": True})
    answers = [httpx.ConnectError("down"), (503, {"detail": "busy", "code": "x"}), done]
    *calls, code = run(monkeypatch, tmp_path, answers, ["--reason", "AUC fell", "--to", "1"])
    assert code == 0 and len(calls) == 3 and len({key for _, _, key in calls}) == 1
    assert calls[0][0] == "http://t/models/credit-risk/rollback"
    assert calls[0][1] == {"reason": "AUC fell", "to_version": 1}
    assert '"champion": "1"' in capsys.readouterr().out


def test_a_refusal_is_one_line_with_its_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    refused = (409, {"detail": "no champion before version 1 to go back to", "code": "no_earlier_champion"})
    *_, code = run(monkeypatch, tmp_path, [refused], ["--reason", "bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "(no_earlier_champion, HTTP 409)" in err[0]


def test_unreachable_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    *calls, code = run(monkeypatch, tmp_path, [httpx.ConnectError("down")] * 3, ["--reason", "bad"])
    assert code == 2 and len(calls) == 3 and "did not answer" in capsys.readouterr().err


def test_watch_shows_a_rollback_with_its_reason() -> None:
    evidence = GateEvidence(checks=[], candidate_metrics={})
    payload = ModelPromotedPayload(
        model_name="credit-risk",
        model_version="1",
        run_id="r",
        previous_version="2",
        evidence=evidence,
        kind="rollback",
        reason="approvals fell",
        requested_by="ops:alice",
    )
    line = describe(ModelPromoted.create(payload, "training"))
    assert "ROLLBACK  credit-risk v1 (was 2, by ops:alice): approvals fell" in line
    assert "PROMOTED" in describe(ModelPromoted.create(payload.model_copy(update={"kind": "promotion"}), "t"))


def test_canary_start_and_end_send_the_right_bodies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    done = (200, {"canary": "8"})
    argv = ["--version", "8", "--share", "0.1", "--reason", "try it"]
    *calls, code = run(monkeypatch, tmp_path, [done], argv, action="canary")
    assert code == 0 and calls[0][:2] == (
        "http://t/models/credit-risk/canary",
        {"version": 8, "share": 0.1, "reason": "try it"},
    )
    *calls, code = run(monkeypatch, tmp_path, [done], ["--end", "--reason", "done"], action="canary")
    assert code == 0 and calls[0][:2] == ("http://t/models/credit-risk/canary/end", {"reason": "done"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--share", "0.6", "--version", "8"], "argument --share: at most 0.5, got 0.6"),
        (["--share", "0", "--version", "8"], "argument --share: must be positive, got 0"),
        (["--version", "8"], "a canary needs --version and --share"),
        (["--end", "--version", "8"], "--end takes no --version or --share"),
    ],
)
def test_bad_canary_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    try:
        *calls, code = run(monkeypatch, tmp_path, [], [*argv, "--reason", "x"], action="canary")
    except SystemExit as exit_:
        code, calls = exit_.code, []
    assert code == 2 and not calls
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_watch_shows_a_canary_with_its_share_and_reason() -> None:
    payload = CanaryChangedPayload(
        model_name="credit-risk",
        action="started",
        model_version="8",
        share=0.1,
        champion_version="7",
        reason="inconclusive at the gate",
        requested_by="ops:alice",
    )
    line = describe(CanaryChanged.create(payload, "training"))
    assert "CANARY    credit-risk v8 started on 10% of traffic (champion v7, by ops:alice)" in line
