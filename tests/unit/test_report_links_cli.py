"""`mlops reports` (infra/report_links.py): one URL on stdout when the drift service answers; one
line on stderr and exit 1 when the key is missing, the service is down or refuses; a bad `--report`
is a usage error (exit 2) before anything is asked."""

from __future__ import annotations

import json
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra import cli, lifecycle
from infra.settings import InfraSettings
from infra.supervisor import SERVICE_ORDER
from servicekit.signed_links import LINK_SECRET_FILE, read_secret
from services.drift.settings import DriftSettings

REPORT = str(uuid.uuid4())


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder with the development keys, and no service on the drift port."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_FIRST_SERVICE_PORT", str(port - SERVICE_ORDER.index("drift")))
    (tmp_path / "secrets").mkdir()
    keys = {"dev-ops": {"role": "ops", "key": "mlops_k"}}
    (tmp_path / "secrets" / "api-keys.json").write_text(json.dumps(keys))
    return tmp_path


def answer(monkeypatch: pytest.MonkeyPatch, status: int, body: dict[str, Any]) -> list[dict[str, Any]]:
    asked: list[dict[str, Any]] = []

    def get(url: str, **kw: Any) -> httpx.Response:
        asked.append({"url": url, **kw})
        return httpx.Response(status, json=body)

    monkeypatch.setattr(httpx, "get", get)
    return asked


def test_the_index_link_is_printed_alone_on_stdout(
    stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"index": "http://127.0.0.1:8105/reports/index.html?expires=1&signature=ab", "expires_at": "T"}
    asked = answer(monkeypatch, 200, body)
    assert cli.main(["reports", "--ttl", "60"]) == 0
    out, err = capsys.readouterr()
    assert out == body["index"] + "\n" and "until T" in err
    assert asked[0]["headers"] == {"X-API-Key": "mlops_k"} and asked[0]["params"] == {"ttl_s": 60}
    assert asked[0]["url"].endswith("/reports/links")


def test_one_reports_link(
    stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = answer(monkeypatch, 200, {"index": "i", "report": "r", "expires_at": "T"})
    assert cli.main(["reports", "--report", REPORT]) == 0
    assert capsys.readouterr().out == "r\n" and asked[0]["params"] == {"report": REPORT}


def test_a_refusal_is_one_line(
    stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer(monkeypatch, 404, {"detail": f"no report {REPORT}", "code": "not_found"})
    assert cli.main(["reports", "--report", REPORT]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"error: the drift service answered 404: no report {REPORT}"


def test_drift_down_is_one_line(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reports"]) == 1  # nothing listens on the drift port
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "does not answer" in err


def test_no_key_is_one_line(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stack / "secrets" / "api-keys.json").unlink()
    assert cli.main(["reports"]) == 1
    assert "mlops up" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--report", "../etc"], ["--report", REPORT.upper()], ["--ttl", "0"]])
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reports", *argv])
    assert exit_.value.code == 2 and "error: argument" in capsys.readouterr().err


def test_mlops_up_provisions_the_link_secret_once_beside_the_keys(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path)
    lifecycle.dev_api_keys(settings)
    secret = settings.secrets_dir / LINK_SECRET_FILE
    first = read_secret(secret)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    lifecycle.dev_api_keys(settings)
    assert read_secret(secret) == first
    drift = DriftSettings(state_dir=tmp_path, environment="production", api_keys_json="[]")
    assert drift.link_signing_secret() == first  # the service finds it where `mlops up` put it
