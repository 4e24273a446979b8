"""What `mlops up --with-label-studio` decides before Label Studio runs: the credentials it generates
once, the settings that keep the server quiet and private, and a missing venv named up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.label_studio import LocalLabelStudio, read_credentials, write_credentials
from infra.settings import REPO_ROOT, InfraSettings
from tests.support import isolated_env


def test_credentials_are_generated_once_and_private(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "secrets")
    first = read_credentials(tmp_path / "secrets")
    assert write_credentials(tmp_path / "secrets") == path
    assert read_credentials(tmp_path / "secrets") == first  # a second `up` keeps the same token
    assert path.stat().st_mode & 0o077 == 0
    assert len(first["token"]) == 40 and first["password"] and first["secret_key"]
    other = write_credentials(tmp_path / "elsewhere")
    assert read_credentials(other.parent)["token"] != first["token"]


def test_the_server_gets_its_credentials_by_environment_and_nothing_phones_home(tmp_path: Path) -> None:
    server = LocalLabelStudio(InfraSettings(state_dir=tmp_path))
    credentials = read_credentials(write_credentials(tmp_path / "secrets").parent)
    env = server.server_env(credentials)
    assert env["LABEL_STUDIO_USER_TOKEN"] == credentials["token"]
    assert env["LABEL_STUDIO_PASSWORD"] == credentials["password"]
    assert env["SENTRY_DSN"] == env["FRONTEND_SENTRY_DSN"] == ""  # their defaults are the vendor's
    assert env["COLLECT_ANALYTICS"] == env["LATEST_VERSION_CHECK"] == "false"
    assert env["LABEL_STUDIO_BASE_DATA_DIR"] == str(tmp_path.resolve() / "label-studio")


def test_a_missing_venv_is_named_before_anything_starts(tmp_path: Path) -> None:
    env = isolated_env()
    env.update(
        {"MLOPS_STATE_DIR": str(tmp_path / "state"), "MLOPS_LABEL_STUDIO_VENV": str(tmp_path / "none")}
    )
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "up", "--with-label-studio"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert result.returncode == 2 and "scripts/install-label-studio.sh" in message, result.stderr
    assert not (tmp_path / "state" / "run" / "components.json").exists()
