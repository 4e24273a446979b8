"""The MLflow tracking server of the cluster profile: its own process, its backend in PostgreSQL
(infra/postgres_local.py), its artifacts served from one shared root, `<state>/mlflow-artifacts`. The
services talk to it over HTTP (MLFLOW_TRACKING_URI); artifacts go through it (`mlflow-artifacts:/`
locations), so no service needs the root's path.

It runs MLflow's basic-auth app: nobody reads or writes a run, a model or an artifact without the
platform's login (`mlops` in `<state>/secrets/mlflow.json`, 0600, generated once), which the
services and the `mlops` commands get as MLFLOW_TRACKING_USERNAME/PASSWORD; anyone else gets 401
(default permission NO_PERMISSIONS). Its user store is SQLite in `<state>/mlflow-auth`. Serving and
explain load pickled models from it, so an open server would be a way to run code as them.

Its backend URI and the login reach it through its environment (MLFLOW_BACKEND_STORE_URI,
MLFLOW_AUTH_ADMIN_PASSWORD), never its command line, which other users can read. It listens on
loopback only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from infra.bus_access import write_private
from infra.postgres_local import MLFLOW_ROLE, LocalPostgres
from infra.processes import http_ready, port_open
from infra.settings import InfraSettings

LOGIN = "mlops"
AUTH_SETTINGS = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{database}
admin_username = {login}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# Each request's PBKDF2 check once a minute per login, not every time.
auth_cache_ttl_seconds = 60
"""


def credentials(secrets_dir: Path) -> dict[str, str]:
    """The platform's login to the server and the secret its sessions are signed with (created once)."""
    path = secrets_dir / "mlflow.json"
    if not path.exists():
        made = {
            "username": LOGIN,
            "password": secrets.token_urlsafe(24),
            "flask_secret": secrets.token_hex(32),
        }
        write_private(path, json.dumps(made, indent=2) + "\n")
    known: dict[str, str] = json.loads(path.read_text())
    return known


def client_env(settings: InfraSettings) -> dict[str, str]:
    """What an MLflow client needs to log in to the server."""
    login = credentials(settings.secrets_dir)
    return {"MLFLOW_TRACKING_USERNAME": login["username"], "MLFLOW_TRACKING_PASSWORD": login["password"]}


class MlflowServerError(RuntimeError):
    """The tracking server could not be started."""


class LocalMlflowServer:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.port = settings.mlflow_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = settings.state_dir.resolve() / "mlflow-artifacts"
        self.log_file = settings.logs_dir / "mlflow-server.log"
        self.auth_dir = settings.state_dir.resolve() / "mlflow-auth"

    @property
    def marker(self) -> str:
        """What identifies our server on its command line."""
        return f"--artifacts-destination={self.artifacts}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server", "--host=127.0.0.1", f"--port={self.port}", self.marker,
            "--serve-artifacts", "--workers=1", "--app-name=basic-auth",
        ]  # fmt: skip

    def write_auth_settings(self) -> Path:
        """basic-auth's settings (0600; no password in them: the login's comes from the environment)."""
        self.auth_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.auth_dir / "basic_auth.ini"
        text = AUTH_SETTINGS.format(database=self.auth_dir / "basic_auth.db", login=LOGIN)
        write_private(path, text)
        return path

    def server_env(self) -> dict[str, str]:
        login = credentials(self.settings.secrets_dir)
        return {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": LocalPostgres(self.settings).url(MLFLOW_ROLE, "mlflow"),
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_dir / "basic_auth.ini"),
            # Used once, when the auth app creates its user store: the admin is our login.
            "MLFLOW_AUTH_ADMIN_PASSWORD": login["password"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": login["flask_secret"],
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # MLflow 3's background job runners (prompt optimisation, scorers): nothing here uses them.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "PYTHONUNBUFFERED": "1",
        }

    def pid(self) -> int | None:
        """Our running server's pid (its command line names our artifact root), else None."""
        ours = [p.pid for p in psutil.process_iter(["cmdline"]) if self.marker in (p.info["cmdline"] or ())]
        return min(ours, default=None)  # the `mlflow server` process, started before its uvicorn

    def ready(self) -> str:
        return http_ready(self.url, "/health")

    def start(self, timeout_s: float = 120.0) -> int:
        """Start it (its database migrated on first start) and wait until /health answers; its pid."""
        if port_open("127.0.0.1", self.port):
            raise MlflowServerError(f"port {self.port} is taken by another process; set MLOPS_MLFLOW_PORT")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.write_auth_settings()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                self.command(), env=self.server_env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while self.ready() != "ready":
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):  # its uvicorn too, which holds the port
                    os.killpg(process.pid, signal.SIGKILL)
                raise MlflowServerError(f"the MLflow server did not start; see {self.log_file}")
            time.sleep(0.3)
        return process.pid
