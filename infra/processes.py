"""Small probes of local processes: an open port, a readiness route, a pid that exits, a pid that is
still alive and still the process it was recorded as."""

from __future__ import annotations

import functools
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ready(url: str, path: str) -> str:
    """ "ready", "not ready" (it answers, not 200) or "down", for a readiness route of a process."""
    import httpx

    try:
        response = probe_client().get(f"{url}{path}")
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else "not ready"


@functools.cache
def probe_client() -> httpx.Client:
    """The process's one client for readiness probes. `httpx.get` builds a client per call, and with
    it an SSL context that loads the CA bundle: about 47 ms of CPU per probe here, against 0.33 ms
    with one client (bench/readiness_probe.py), and `mlops up` probes every pending service every
    0.3 s. No keep-alive: each probe opens its own connection, so a restarted process is never
    probed over a stale one."""
    import httpx

    return httpx.Client(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0))


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A child of ours lingers as a zombie until reaped; reap it if it is ours.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (
        Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        if Path(f"/proc/{pid}/stat").exists()
        else "X"
    )
    return state != "Z"


def process_matches(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def free_port() -> int:
    """A port nothing listens on now, for a process started right after (the replay's service, the
    throwaway broker of infra/kafka_classes.py)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
