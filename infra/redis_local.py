"""Redis for the cluster profile (`mlops up --profile cluster`): the Feast online store that the features
service writes and serving reads. Debian's `redis-server` (scripts/install-test-tools.sh installs it),
on loopback, with its append-only file under `<state>/redis`, its log in `<state>/logs/redis.log`.

Its password is generated once into `<state>/secrets/redis.json` (0600) and reaches the server through
a 0600 `redis.conf` beside its data, never its command line (other users can read /proc/PID/cmdline);
services get it inside MLOPS_FEAST_ONLINE_STORE, in their environment, which only their user reads.

`appendonly yes` with `appendfsync always`: Redis writes and fsyncs each event loop's commands to the
file before it answers them, so a write that was acknowledged survives the process being killed and the
machine crashing. `everysec` does not promise that: while its background fsync is still running (a
busy disk), Redis postpones the write for up to 2 s but answers anyway, so a SIGKILL can lose writes it
acknowledged. That is the likely cause of a CI run (2026-12-07) that found 9 of 800 features gone
after the SIGKILL drill; it did not reproduce locally. Features writes a batch in one pipeline, so
`always` costs about one fsync per batch (1.25x per batch: bench/redis_fsync.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.processes import port_open, wait_for_exit
from infra.settings import InfraSettings

if TYPE_CHECKING:
    from rich.console import Console

    from infra.supervisor import Component

SERVER = "redis-server"
INSTALL_HINT = "install it with scripts/install-test-tools.sh (Debian's redis-server)"
# A hung server (not a dead one: that refuses at once) turns into a timeout, which consumers wait out.
CLIENT_TIMEOUT_S = 5


class RedisError(Exception):
    """Redis cannot be started (missing binary, taken port, failed start)."""


def write_password(secrets_dir: Path) -> Path:
    """The server's password, created once (0600), as {"password"}."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / "redis.json"
    if not path.exists():
        # Hex behind a letter: Feast json-decodes each `key=value` of its connection string, and an
        # all-digit password would come back as a number; hex also holds no `,` or `=` to split on.
        credentials = {"password": f"r{secrets.token_hex(24)}"}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(credentials, indent=2) + "\n")
    return path


def read_password(secrets_dir: Path) -> str:
    password: str = json.loads((secrets_dir / "redis.json").read_text())["password"]
    return password


def render_config(home: Path, port: int, password: str) -> str:
    """redis.conf of our server: loopback only, a password, every write in the append-only file."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"requirepass {password}",
        f'dir "{home}"',
        "appendonly yes",
        "appendfsync always",  # see the module's docstring: everysec can lose what it acknowledged
        'save ""',  # the append-only file is the one persistence; no RDB snapshots beside it
        "daemonize no",
        f'pidfile "{home / "redis.pid"}"',
        'logfile ""',  # stdout, which start() sends to the log file
        # Redis rewrites its command line into a title by default; kept as started, it still names
        # the config file, the marker `mlops down` checks before it signals a pid.
        "set-proc-title no",
    ]
    return "\n".join(lines) + "\n"


def feast_online_store(settings: InfraSettings) -> dict[str, Any]:
    """Feast's RedisOnlineStoreConfig for our server (password created on first use)."""
    write_password(settings.secrets_dir)
    password = read_password(settings.secrets_dir)
    timeouts = f"socket_timeout={CLIENT_TIMEOUT_S},socket_connect_timeout={CLIENT_TIMEOUT_S}"
    return {
        "type": "redis",
        "connection_string": f"127.0.0.1:{settings.redis_port},password={password},{timeouts}",
    }


class LocalRedis:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "redis"
        self.config_file = self.home / "redis.conf"
        self.log_file = settings.logs_dir / "redis.log"
        self.port = settings.redis_port
        self.url = f"redis://127.0.0.1:{self.port}"  # no password: it is shown by `mlops status`

    @property
    def marker(self) -> str:
        """What identifies our process on its command line (pids are reused)."""
        return str(self.config_file)

    def binary(self) -> str:
        found = shutil.which(SERVER)
        if found is None:
            raise RedisError(f"{SERVER} is not installed; {INSTALL_HINT}")
        return found

    def command(self) -> list[str]:
        """The server's command line: the config file alone (the password stays inside it)."""
        return [SERVER, str(self.config_file)]

    def write_config(self) -> Path:
        write_password(self.settings.secrets_dir)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.home.chmod(0o700)
        text = render_config(self.home, self.port, read_password(self.settings.secrets_dir))
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        self.config_file.chmod(0o600)  # also when an older file had other bits
        return self.config_file

    def client(self, **options: Any) -> Any:
        """An AUTHed redis-py client of our server (imported here: the CLI does not need it otherwise)."""
        import redis

        password = read_password(self.settings.secrets_dir)
        return redis.Redis(host="127.0.0.1", port=self.port, password=password, **options)

    def health(self) -> str:
        """Ready (an AUTHed PING answers), not ready (it answers otherwise: loading, refusing), or down."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One try: redis-py's default retries a refused connection with backoff for about ten seconds.
        once = Retry(NoBackoff(), 0)
        try:
            with self.client(socket_timeout=2, socket_connect_timeout=2, retry=once) as client:
                client.ping()
        except redis.ConnectionError as error:
            # BusyLoadingError and AuthenticationError are ConnectionErrors too, but someone answered.
            answered = isinstance(error, redis.BusyLoadingError | redis.AuthenticationError)
            return "not ready" if answered else "down"
        except (redis.RedisError, OSError):
            return "not ready"
        return "ready"

    def pid(self) -> int | None:
        """Our server's pid, if it runs (the pid file is checked against the marker: pids are reused)."""
        from infra.processes import pid_alive, process_matches

        try:
            pid = int((self.home / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and process_matches(pid, self.marker) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout_s: float = 30.0) -> int:
        """Start the server and wait until an AUTHed PING answers (after the append-only file is
        loaded); return its pid."""
        if port_open("127.0.0.1", self.port):
            raise RedisError(f"port {self.port} is taken by another process; set MLOPS_REDIS_PORT")
        self.binary()  # a missing server is named here, not as Popen's FileNotFoundError
        self.write_config()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                self.command(),
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while self.health() != "ready":
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.terminate()
                process.wait(timeout=10)
                raise RedisError(f"redis-server did not start; see {self.log_file}")
            time.sleep(0.1)
        return process.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM (Redis fsyncs its append-only file and exits), SIGKILL if it lingers. False if
        our server was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not wait_for_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 5.0)
        return True


def start_redis(settings: InfraSettings, components: dict[str, Component], console: Console) -> Component:
    """Our running server as it is, or a new one started with the password (created once)."""
    from infra.supervisor import Component

    server = LocalRedis(settings)
    where = f"data in {server.home}, password in {settings.secrets_dir / 'redis.json'}"
    pid = server.pid()
    if pid is not None:  # ours (its command line names our config file): `mlops down` stops it
        if server.health() != "ready":  # e.g. its password file was regenerated since it started
            raise RedisError(
                f"our Redis on port {server.port} runs but does not answer with the password in "
                f"{settings.secrets_dir / 'redis.json'}: `mlops down`, then `mlops up` restarts it with it"
            )
        console.print(f"[green]redis[/] {server.url} (already running); {where}")
        return Component("redis", "redis", server.url, pid, str(server.log_file), True)
    started = time.monotonic()
    with console.status("starting Redis (it replays its append-only file)..."):
        pid = server.start()
    console.print(f"[green]redis[/] {server.url} ready in {time.monotonic() - started:.1f}s; {where}")
    return Component("redis", "redis", server.url, pid, str(server.log_file), True)
