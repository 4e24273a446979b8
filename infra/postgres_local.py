"""PostgreSQL for the cluster profile (`mlops up --profile cluster`): one durable server under
`<state>/postgres`, on loopback, holding the audit store and the backend of the MLflow tracking server.

- Server binaries: Debian's `postgresql` package (scripts/install-test-tools.sh installs it). PostgreSQL
  refuses to run as root, so as root it runs as the package's `postgres` OS user, which then owns the
  data folder.
- Authentication: SCRAM on TCP, nothing else. Every role's password is generated once into
  `<state>/secrets/postgres.json` (0600) and handed over in a 0600 file (initdb) or over the connection
  (ALTER ROLE), never on a command line.
- Roles (infra/postgres_roles.py): `audit_owner` owns the `audit` database and migrates the chain
  (only `mlops up` logs in as it); `audit_app` is what the audit service logs in as, with SELECT and
  INSERT on the chain and nothing else, so the service cannot change history, disable the guards or
  become the owner; `mlflow` owns the `mlflow` database. Each reaches its own database only.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import secrets
import stat
import subprocess
import time
from pathlib import Path

import psutil
from sqlalchemy.engine import URL

from infra.bus_access import write_private
from infra.postgres_roles import AUDIT_APP, AUDIT_OWNER, MLFLOW_ROLE, SUPERUSER, PostgresError, provision
from infra.processes import port_open
from infra.settings import InfraSettings

DRIVER = "postgresql+psycopg"
OS_USER = "postgres"  # created by Debian's postgresql package
INSTALL_HINT = "run scripts/install-test-tools.sh (it installs Debian's postgresql package)"
LOGIN_ROLES = (SUPERUSER, AUDIT_OWNER, AUDIT_APP, MLFLOW_ROLE)
SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9_-]{16,}$")  # what token_urlsafe makes: safe as an SQL literal
START_ATTEMPTS = 5


def server_bin_dir(data: Path | None = None) -> Path:
    """The binaries of the version that created `data` (its PG_VERSION), else the newest
    /usr/lib/postgresql/<version>/bin that holds initdb and pg_ctl: a newer server beside it after an
    upgrade would refuse the older data folder."""
    version = data / "PG_VERSION" if data is not None else None
    if version is not None and version.exists():
        own = Path(f"/usr/lib/postgresql/{version.read_text().strip()}/bin")
        if (own / "pg_ctl").exists():
            return own
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresError(f"no PostgreSQL server binaries under /usr/lib/postgresql: {INSTALL_HINT}")
    return found[-1]


def server_os_user() -> str | None:
    """The OS user the server runs as: `postgres` as root, else None (the current user)."""
    return OS_USER if os.geteuid() == 0 else None


def hand_over(folder: Path, user: str | None) -> None:
    """Give `folder` (0700) to the server's OS user: initdb and the server write into it."""
    if user is not None:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            raise PostgresError(f"no {user!r} OS user to run PostgreSQL as: {INSTALL_HINT}") from None
        blocked = unreachable_ancestor(folder, account.pw_uid, account.pw_gid)
        if blocked is not None:
            raise PostgresError(
                f"PostgreSQL runs as the OS user {user!r}, which cannot enter {blocked}: let it (chmod o+x) "
                "or choose a state folder it can reach (MLOPS_STATE_DIR)"
            )
        os.chown(folder, account.pw_uid, account.pw_gid)
    folder.chmod(0o700)


def unreachable_ancestor(folder: Path, uid: int, gid: int) -> Path | None:
    """The first folder above `folder` that `uid` may not enter (no x bit for it), or None."""
    for ancestor in reversed(folder.resolve().parents):
        mode = ancestor.stat()
        bit = stat.S_IXUSR if mode.st_uid == uid else stat.S_IXGRP if mode.st_gid == gid else stat.S_IXOTH
        if not mode.st_mode & bit:
            return ancestor
    return None


def run_server_program(
    folder: Path, user: str | None, program: str, *args: str, data: Path | None = None
) -> None:
    """One of the server's programs (initdb, pg_ctl) as its OS user, the version of `data`'s; a failure
    raises with its output and the tail of the server's log."""
    # As the user with its own groups, not root's: the folders hand_over checked are checked for those.
    group = pwd.getpwnam(user).pw_gid if user is not None else None
    done = subprocess.run(
        [str(server_bin_dir(data) / program), *args], user=user, group=group,
        extra_groups=[] if user is not None else None, cwd=folder, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        log = folder / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        output = f"{done.stdout}\n{done.stderr}\n{tail}"
        raise PostgresError(f"{program} failed (exit {done.returncode}):\n{output}")


class LocalPostgres:
    def __init__(self, settings: InfraSettings) -> None:
        self.folder = settings.state_dir.resolve() / "postgres"
        self.data = self.folder / "data"
        self.port = settings.postgres_port
        self.secrets_file = settings.secrets_dir / "postgres.json"
        self.log_file = self.folder / "server.log"
        self.user = server_os_user()

    @property
    def marker(self) -> str:
        """What identifies our server on its command line (`postgres -D <data> ...`)."""
        return str(self.data)

    @property
    def address(self) -> str:
        return f"postgresql://127.0.0.1:{self.port}"

    def passwords(self) -> dict[str, str]:
        """Every login role's password, generated once (0600); a role added since gets one too."""
        known: dict[str, str] = (
            json.loads(self.secrets_file.read_text()) if self.secrets_file.exists() else {}
        )
        missing = [role for role in LOGIN_ROLES if role not in known]
        if missing:
            known.update({role: secrets.token_urlsafe(24) for role in missing})
            write_private(self.secrets_file, json.dumps(known, indent=2) + "\n")
        unsafe = [role for role in LOGIN_ROLES if not SAFE_PASSWORD.match(known[role])]
        if unsafe:  # they are quoted into ALTER ROLE, so nothing but what we generate is accepted
            raise PostgresError(f"{self.secrets_file}: the passwords of {unsafe} are not as generated")
        return known

    def url(self, role: str, database: str) -> str:
        """SQLAlchemy URL of `database` as `role`, password included (for environments, never logs)."""
        return URL.create(
            DRIVER, role, self.passwords()[role], "127.0.0.1", self.port, database
        ).render_as_string(hide_password=False)

    # -- lifecycle -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (its postmaster.pid names it), else None. A killed one
        that is not reaped yet (a zombie) counts as gone."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            process = psutil.Process(pid)
            # ...and a pid reused by another process since a crash is not ours to signal.
            if process.status() != psutil.STATUS_ZOMBIE and self.marker in process.cmdline():
                return pid
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def start(self) -> bool:
        """Create the cluster the first time, start it, and provision its roles and databases. False
        when ours already ran."""
        if self.pid() is not None and port_open("127.0.0.1", self.port):
            provision(self)
            return False
        if port_open("127.0.0.1", self.port):
            raise PostgresError(f"port {self.port} is taken by another process; set MLOPS_POSTGRES_PORT")
        self.folder.mkdir(parents=True, exist_ok=True)
        hand_over(self.folder, self.user)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        # TCP on loopback only, no Unix socket: no path goes through pg_ctl's shell, and none can be
        # too long for a socket's name.
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''",
                "-c max_connections=200",
            )
        )
        for attempt in range(START_ATTEMPTS):
            try:
                self._pg_ctl("-l", str(self.log_file), "-o", options, "-w", "-t", "60", "start")
                break
            except PostgresError:
                # Right after a crash the old postmaster may not be reaped yet, or its backends may
                # still hold the shared memory: the new one refuses until they are gone.
                if attempt == START_ATTEMPTS - 1:
                    raise
                time.sleep(2.0)
        try:
            provision(self)
        except PostgresError:
            self.stop()  # not left running unrecorded: `mlops down` would not know it
            raise
        return True

    def stop(self) -> bool:
        """A fast shutdown (sessions rolled back, data flushed); False when it was not running."""
        if self.pid() is None:
            return False
        self._pg_ctl("-m", "fast", "-w", "stop")
        return True

    def _pg_ctl(self, *args: str) -> None:
        run_server_program(self.folder, self.user, "pg_ctl", "-D", str(self.data), *args, data=self.data)

    def _initdb(self) -> None:
        pwfile = self.folder / "initdb.pw"
        write_private(pwfile, self.passwords()[SUPERUSER] + "\n")
        hand_over(pwfile, self.user)  # the OS user that runs initdb reads it
        try:
            run_server_program(self.folder, self.user, "initdb", "-D", str(self.data), "-U", SUPERUSER,
                               f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                               "--locale=C")  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
