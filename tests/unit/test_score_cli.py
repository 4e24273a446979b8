"""`mlops score`: bad input refused in one line with exit 2 before anything is sent (no file, another
format, both a file and a range, a time without a zone); a service's refusal reported with its reason
(exit 2), a failed job with its reason (exit 1), and a scored file summarised in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra import cli, score_cli

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "nowhere.parquet"], "error: cannot read nowhere.parquet: No such file or directory"),
        (["score", "data.json"], "error: data.json: not a .parquet or .csv file"),
        (["score"], "error: give a FILE, or --start and --end (not both)"),
        (["score", "x.csv", "--start", "2026-01-01T00:00:00Z"], "error: give a FILE, or --start and --end"),
        (["score", "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z"], "end after start"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.json").write_text("{}")
    assert cli.main([*argv, "--api-key", "k", "--url", "http://127.0.0.1:9"]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_time_without_a_zone_is_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["score", "--start", "2026-01-01T00:00:00", "--end", "2026-01-02T00:00:00Z"])
    assert exit_.value.code == 2
    assert "needs a time zone" in capsys.readouterr().err


def serve(monkeypatch: pytest.MonkeyPatch, answer: Callable[[httpx.Request], httpx.Response]) -> list[Any]:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("content-type")))
        return answer(request)

    real = httpx.Client
    monkeypatch.setattr(
        score_cli.httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(handler), **kw)
    )
    monkeypatch.setattr(score_cli.time, "sleep", lambda _: None)
    return seen


def test_a_refused_file_is_reported_with_the_reason_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = {"detail": "missing column(s) the model needs: purpose", "code": "invalid_input"}
    seen = serve(monkeypatch, lambda _: httpx.Response(422, json=detail))
    data = tmp_path / "apps.csv"
    data.write_text("a,b\n1,2\n")
    assert cli.main(["score", str(data), "--api-key", "k", "--url", "http://s"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: missing column(s) the model needs: purpose (invalid_input, HTTP 422)"
    )
    assert seen == [("POST", "/batch-scores", "text/csv")]


def job(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": "f" * 32, "state": state, "rows": 3, "rows_per_s": 1500.0, "model_name": "credit-risk",
        "model_version": "4", "input_sha256": SHA, "reason": None, **extra,
    }  # fmt: skip


def test_a_scored_file_is_downloaded_and_summarised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    states = iter(["running", "done"])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.url.params["version"] == "4"
            return httpx.Response(202, json=job("running"))
        if request.url.path.endswith("/file"):
            return httpx.Response(200, content=b"PAR1 scores")
        return httpx.Response(200, json=job(next(states)))

    serve(monkeypatch, answer)
    data = tmp_path / "apps.parquet"
    data.write_bytes(b"PAR1 input")
    assert cli.main(["score", str(data), "--version", "4", "--api-key", "k", "--url", "http://s"]) == 0
    out = tmp_path / "apps.scores.parquet"
    assert out.read_bytes() == b"PAR1 scores"
    assert capsys.readouterr().out.strip() == (
        f"scored 3 rows at 1500 rows/s with credit-risk version 4; input sha256 {SHA}; scores in {out}"
    )


def test_a_failed_job_is_exit_1_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = job("failed", reason="the model cannot score these values: purpose")

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.method == "POST" else None
        assert body is None or set(body) == {"start", "end"}
        return httpx.Response(202 if request.method == "POST" else 200, json=failed)

    serve(monkeypatch, answer)
    argv = ["score", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00+00:00"]
    assert cli.main([*argv, "--api-key", "k", "--url", "http://s"]) == 1
    assert "error: the job failed: the model cannot score these values: purpose" in capsys.readouterr().err


def test_mlops_watch_prints_a_batch_in_one_line() -> None:
    from contracts.samples import sample_events
    from infra.watch import describe

    [event] = [e for e in sample_events() if e.event_type == "BatchScored"]
    assert describe(event) == f"04:04:05 SCORED    fraud v5: 1000 rows from file (sha256 {SHA[:12]}) in 1.5 s"
