"""Label Studio for the local stack (`mlops up --with-label-studio`): the pinned server from its own
venv (scripts/install-label-studio.sh), on loopback, with its SQLite database and media under
`<state>/label-studio`, its log in `<state>/logs/label-studio.log`.

Its admin account and API token are generated once into `<state>/secrets/label-studio.json` (0600)
and handed to the server through its environment on every start: Label Studio creates that user,
with that token as its (legacy, non-expiring) API token, the first time and leaves it alone after.
The values are never printed or put on a command line (other users can read /proc/PID/cmdline).

What would phone home is switched off through its settings: Sentry (its DSN defaults to the
vendor's), the frontend's Sentry, usage analytics and the PyPI version check.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.label_studio_db import seed_database
from infra.processes import http_ready, port_open
from infra.settings import REPO_ROOT, InfraSettings

if TYPE_CHECKING:
    from rich.console import Console

    from infra.supervisor import Component

INSTALL_HINT = "install it with scripts/install-label-studio.sh"
ADMIN_EMAIL = "admin@mlops.local"
# Label Studio's own settings (read with a LABEL_STUDIO_ prefix or none; see its core/utils/params.py).
QUIET_SETTINGS = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",  # no stranger on loopback signs up
    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # the token we generate is a legacy token
    "DJANGO_DB": "sqlite",
    "LOG_LEVEL": "WARNING",
}


class LabelStudioError(Exception):
    """Label Studio cannot be started (missing venv, taken port, failed start)."""


def write_credentials(secrets_dir: Path) -> Path:
    """The admin account and API token, created once (0600), as {"email", "password", "token",
    "secret_key"} (Django's, so sessions outlive a restart)."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / "label-studio.json"
    if not path.exists():
        credentials = {
            "email": ADMIN_EMAIL,
            "password": secrets.token_urlsafe(18),
            "token": secrets.token_hex(20),  # the shape of Label Studio's own tokens (40 hex digits)
            "secret_key": secrets.token_urlsafe(40),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(credentials, indent=2) + "\n")
    return path


def read_credentials(secrets_dir: Path) -> dict[str, str]:
    credentials: dict[str, str] = json.loads((secrets_dir / "label-studio.json").read_text())
    return credentials


class LocalLabelStudio:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "label-studio"
        self.venv = REPO_ROOT / settings.label_studio_venv  # an absolute setting stays as it is
        self.log_file = settings.logs_dir / "label-studio.log"
        self.url = f"http://127.0.0.1:{settings.label_studio_port}"

    @property
    def database(self) -> Path:
        return self.home / "label_studio.sqlite3"

    @property
    def marker(self) -> str:
        """What identifies our process on its command line (pids are reused)."""
        return f"--data-dir={self.home}"

    def binary(self) -> Path:
        found = self.venv / "bin" / "label-studio"
        if not found.exists():
            raise LabelStudioError(f"Label Studio is not installed in {self.venv}; {INSTALL_HINT}")
        return found

    def server_env(self, credentials: dict[str, str]) -> dict[str, str]:
        return {
            **os.environ,
            **QUIET_SETTINGS,
            "LABEL_STUDIO_USERNAME": credentials["email"],
            "LABEL_STUDIO_PASSWORD": credentials["password"],
            "LABEL_STUDIO_USER_TOKEN": credentials["token"],
            "SECRET_KEY": credentials["secret_key"],
            # Also as a variable: its settings are imported once before --data-dir is read.
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.home),
            # Webhooks go to the annotation service on loopback, which the SSRF guard would refuse.
            "SSRF_PROTECTION_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, timeout_s: float = 180.0, seed: bool = True) -> int:
        """Start the server on loopback and wait until /health answers; return its pid. `seed`: a new
        folder's database is a copy of the migrated template (False: Label Studio migrates it)."""
        binary = self.binary()
        port = self.settings.label_studio_port
        # Checked here: Label Studio itself would quietly move to the next free port.
        if port_open("127.0.0.1", port):
            raise LabelStudioError(f"port {port} is taken by another process; set MLOPS_LABEL_STUDIO_PORT")
        credentials = read_credentials(self.settings.secrets_dir)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if seed:
            seed_database(self.venv, self.database, QUIET_SETTINGS)  # a new folder skips the migrations
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                [
                    str(binary),
                    "start",
                    "--no-browser",
                    self.marker,
                    f"--database={self.database}",
                    "--internal-host=127.0.0.1",
                    f"--port={port}",
                    "--enable-legacy-api-token",
                ],
                cwd=self.home,
                env=self.server_env(credentials),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while probe_label_studio(self.url) != "ready":
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.terminate()
                raise LabelStudioError(f"label-studio did not start; see {self.log_file}")
            time.sleep(0.3)
        return process.pid


def probe_label_studio(url: str) -> str:
    return http_ready(url, "/health")


def auth_header(secrets_dir: Path) -> dict[str, Any]:
    """The header Label Studio's API takes for the generated admin token."""
    return {"Authorization": f"Token {read_credentials(secrets_dir)['token']}"}


def start_label_studio(
    settings: InfraSettings, components: dict[str, Component], console: Console
) -> Component:
    """Our running server as it is, or a new one started with the credentials (created once)."""
    from infra.processes import pid_alive, process_matches
    from infra.supervisor import Component

    server = LocalLabelStudio(settings)
    where = f"login and API token in {settings.secrets_dir / 'label-studio.json'}"
    running = components.get("label-studio")
    if running and running.pid and pid_alive(running.pid) and process_matches(running.pid, server.marker):
        console.print(f"[green]label-studio[/] {running.url} (already running); {where}")
        return running
    write_credentials(settings.secrets_dir)
    started = time.monotonic()
    with console.status("starting Label Studio (its first start on this machine migrates a database)..."):
        pid = server.start()
    console.print(f"[green]label-studio[/] {server.url} ready in {time.monotonic() - started:.1f}s; {where}")
    return Component("label-studio", "label-studio", server.url, pid, str(server.log_file), True)
