"""Redis for deploy/compose.yaml, as the cluster profile runs it (infra/redis_local.py): Feast's online
store, a password required, every write in the append-only file. Written by deploy/make_secrets.py
into deploy/secrets/redis/ (git-ignored): the password (redis.json, once), the server's redis.conf
(mounted into the `redis` container) and online-store.env, the MLOPS_FEAST_ONLINE_STORE that
features, training and serving read (an env file: compose.yaml holds no password)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infra.redis_local import CLIENT_TIMEOUT_S, read_password, write_password

HOST, PORT = "redis", 6379  # the compose service and Redis's own port, on the compose network only
CONFIG_MOUNT = "/usr/local/etc/redis/redis.conf"
ONLINE_STORE_ENV = "online-store.env"


def online_store(password: str) -> dict[str, Any]:
    """Feast's RedisOnlineStoreConfig for the compose server (as feast_online_store() for the local one)."""
    timeouts = f"socket_timeout={CLIENT_TIMEOUT_S},socket_connect_timeout={CLIENT_TIMEOUT_S}"
    return {"type": "redis", "connection_string": f"{HOST}:{PORT},password={password},{timeouts}"}


def server_config(password: str) -> str:
    """The container's redis.conf: any address of the compose network (no port is published), a
    password, every write in the append-only file, no RDB snapshots beside it."""
    lines = [
        f"port {PORT}",
        "bind 0.0.0.0",
        "protected-mode yes",  # with a password set, it refuses only clients without it
        f"requirepass {password}",
        'dir "/data"',
        "appendonly yes",
        "appendfsync always",  # as infra/redis_local.py: what Redis acknowledged survives a kill
        'save ""',
    ]
    return "\n".join(lines) + "\n"


def write_compose_redis(out: Path) -> None:
    write_password(out)  # once; reruns keep it
    password = read_password(out)
    _write(out / "redis.conf", server_config(password), 0o644)  # read by the container's redis user
    value = json.dumps(online_store(password))
    _write(out / ONLINE_STORE_ENV, f"MLOPS_FEAST_ONLINE_STORE='{value}'\n", 0o600)


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(mode)
