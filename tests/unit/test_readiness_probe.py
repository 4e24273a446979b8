"""infra.processes.http_ready with its one client per process: ready, not ready and down as before,
and a process restarted on the same port is probed afresh (no kept-alive connection to a dead one)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from infra.processes import http_ready, probe_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(port: int, status: int) -> Iterator[None]:
    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections alive unless the client says otherwise

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_ready_not_ready_and_down_across_restarts_on_one_port() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert http_ready(url, "/ready") == "down"
    with server(port, 200):
        assert [http_ready(url, "/ready") for _ in range(3)] == ["ready"] * 3
    assert http_ready(url, "/ready") == "down"
    with server(port, 503):  # restarted, not ready yet: answered over a new connection
        assert http_ready(url, "/ready") == "not ready"
    with server(port, 200):
        assert http_ready(url, "/ready") == "ready"
    assert probe_client() is probe_client()  # one client, one SSL context, per process


def test_garbage_urls_are_down_not_errors() -> None:
    for url in ("http://127.0.0.1:1", "http://no-such-host.invalid:80", "http://[::1]:1"):
        assert http_ready(url, "/ready") == "down"


def test_the_benchmark_refuses_counts_that_are_not_positive() -> None:
    import subprocess
    import sys

    from infra.settings import REPO_ROOT

    for args in (["--rounds", "0"], ["--probes", "-1"], ["--rounds", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "bench.readiness_probe", *args],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
