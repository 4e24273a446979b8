"""Small probes of local processes: an open port, a readiness route, a pid that exits, a pid that is
still alive and still the process it was recorded as."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


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
        response = httpx.get(f"{url}{path}", timeout=2.0)
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else "not ready"


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
