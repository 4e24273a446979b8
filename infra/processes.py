"""Small probes of local processes: an open port, a readiness route, a pid that exits."""

from __future__ import annotations

import os
import socket
import time


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
