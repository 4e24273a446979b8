"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary folder, `pg_ctl start` on a
free loopback port (its unix socket in the same folder), one fresh database per caller, stopped and
removed at the end of the session.

The server binaries come from Debian's `postgresql` package (scripts/install-test-tools.sh installs
it). PostgreSQL refuses to run as root, so as root the cluster runs as the package's `postgres` user.
Nothing is skipped: when the cluster cannot start, the tests that need it fail with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from infra.postgres_local import (
    DRIVER,
    SUPERUSER,
    hand_over,
    run_server_program,
    server_bin_dir,
    server_os_user,
)
from infra.postgres_local import PostgresError as PostgresStartError


def reachable_state_dir() -> Path:
    """A state folder under /tmp that PostgreSQL's OS user can enter (pytest's own tmp folders are
    0700, so as root the server, which runs as `postgres`, could not reach a data folder in them)."""
    folder = Path(tempfile.mkdtemp(prefix="mlops-state-"))
    folder.chmod(0o711)  # enter, not list
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL cluster in `folder`, owned by the OS user it runs as."""

    def __init__(self, folder: Path, port: int | None = None, durable: bool = False) -> None:
        # Not durable (the default, for speed): fsync and synchronous commit off, so a crash loses the
        # last commits. A drill that crashes the server needs `durable`, as production runs it.
        self.durable = durable
        self.folder = folder
        self.data = folder / "data"
        self.port = port or free_port()
        self.bin = server_bin_dir()  # fails early, with the install hint, when PostgreSQL is missing
        self.user = server_os_user()

    @property
    def admin_url(self) -> str:
        return f"{DRIVER}://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        hand_over(self.folder, self.user)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"
        )  # fmt: skip
        self.start_server()

    def start_server(self) -> None:
        """Start the initialised cluster (again, after `stop`: same port, same data)."""
        speed = "" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 {speed}-c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its SQLAlchemy URL (superuser, so it owns what it creates)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def execute(self, *statements: str, url: str | None = None) -> None:
        """Statements outside a transaction (CREATE DATABASE, CREATE ROLE), as the superuser."""
        engine = create_engine(url or self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()

    def _run(self, program: str, *args: str) -> None:
        run_server_program(self.folder, self.user, program, *args)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster (started on first use, stopped at the end)."""
    folder = Path(tempfile.mkdtemp(prefix="mlops-test-pg-"))
    cluster = None
    try:
        cluster = PostgresCluster(folder)
        cluster.start()
    except (PostgresStartError, OSError, subprocess.SubprocessError) as err:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"the test PostgreSQL cluster did not start: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL of a fresh database on the test cluster (owned by the superuser)."""
    return postgres_cluster.create_database()
