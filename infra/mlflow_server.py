"""The MLflow tracking server of the cluster profile: its own process, its backend in PostgreSQL
(infra/postgres_local.py), its artifacts served from one shared root, `<state>/mlflow-artifacts`. The
services talk to it over HTTP (MLFLOW_TRACKING_URI); artifacts go through it (`mlflow-artifacts:/`
locations), so no service needs the root's path.

Its backend URI carries the `mlflow` role's password: it goes in the environment
(MLFLOW_BACKEND_STORE_URI), never on the command line, which other users can read. It listens on
loopback only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil

from infra.postgres_local import MLFLOW_ROLE, LocalPostgres
from infra.processes import http_ready, port_open
from infra.settings import InfraSettings


class MlflowServerError(RuntimeError):
    """The tracking server could not be started."""


class LocalMlflowServer:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.port = settings.mlflow_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = settings.state_dir.resolve() / "mlflow-artifacts"
        self.log_file = settings.logs_dir / "mlflow-server.log"

    @property
    def marker(self) -> str:
        """What identifies our server on its command line."""
        return f"--artifacts-destination={self.artifacts}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server", "--host=127.0.0.1", f"--port={self.port}", self.marker,
            "--serve-artifacts", "--workers=1",
        ]  # fmt: skip

    def server_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": LocalPostgres(self.settings).url(MLFLOW_ROLE, "mlflow"),
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
