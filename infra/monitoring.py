"""Prometheus for the local stack (`mlops up --with-prometheus`): the system's `prometheus` binary
(Debian package `prometheus`, 2.42 on bookworm), on loopback, with its config, data, credentials
file and log under `<state>/prometheus`.

The config is rendered from `infra/prometheus/prometheus.yml`: only the services that run, at their
real ports, and the ops key read from a file written here at run time (never from the repository).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from infra.processes import http_ready, port_open
from infra.settings import REPO_ROOT, InfraSettings

TEMPLATE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
INSTALL_HINT = "install the Debian package: apt-get install prometheus (2.42 or newer)"


class PrometheusError(Exception):
    """Prometheus cannot be started (missing binary, taken port, failed start)."""


def render_config(
    template: dict[str, Any], ports: dict[str, int], credentials_file: Path, scrape_interval_s: float
) -> dict[str, Any]:
    """The template with targets only for `ports` (component -> port) on loopback, the interval, and
    the credentials file. Prometheus durations take no fractions, hence milliseconds."""
    config = copy.deepcopy(template)
    interval_ms = round(scrape_interval_s * 1000)
    config["global"]["scrape_interval"] = f"{interval_ms}ms"
    config["global"]["scrape_timeout"] = f"{min(interval_ms, 10_000)}ms"
    for job in config["scrape_configs"]:
        job["authorization"]["credentials_file"] = str(credentials_file)
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{ports[static['labels']['component']]}"], "labels": static["labels"]}
            for static in job["static_configs"]
            if static["labels"]["component"] in ports
        ]
    return config


def ops_key(plain_keys_file: Path) -> str:
    """The development ops key `mlops up` generated (api-keys.json: name -> {role, key})."""
    keys = json.loads(plain_keys_file.read_text())
    for entry in keys.values():
        if entry["role"] == "ops":
            return str(entry["key"])
    raise PrometheusError(f"no ops key in {plain_keys_file}")


class LocalPrometheus:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir.resolve() / "prometheus"
        self.config_file = self.home / "prometheus.yml"
        self.key_file = self.home / "ops-api-key"
        self.log_file = settings.logs_dir / "prometheus.log"
        self.url = f"http://127.0.0.1:{settings.prometheus_port}"

    @property
    def marker(self) -> str:
        """What identifies our process on its command line (pids are reused)."""
        return f"--config.file={self.config_file}"

    def binary(self) -> str:
        found = shutil.which(self.settings.prometheus_binary)
        if found is None:
            raise PrometheusError(f"'{self.settings.prometheus_binary}' not found; {INSTALL_HINT}")
        return found

    def write_config(self, ports: dict[str, int], key: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key_file.unlink(missing_ok=True)
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key)
        template = yaml.safe_load(TEMPLATE.read_text())
        config = render_config(template, ports, self.key_file, self.settings.prometheus_scrape_interval_s)
        self.config_file.write_text(
            "# Rendered by `mlops up --with-prometheus` from infra/prometheus/prometheus.yml.\n"
            + yaml.safe_dump(config, sort_keys=False)
        )

    def start(self, timeout_s: float = 30.0) -> int:
        """Start the server on loopback and wait until it is ready; return its pid."""
        binary = self.binary()
        if port_open("127.0.0.1", self.settings.prometheus_port):
            raise PrometheusError(
                f"port {self.settings.prometheus_port} is taken by another process; set MLOPS_PROMETHEUS_PORT"
            )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                [
                    binary,
                    self.marker,
                    f"--storage.tsdb.path={self.home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                    "--storage.tsdb.retention.time=7d",
                ],
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while probe_prometheus(self.url) != "ready":
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.terminate()
                raise PrometheusError(f"prometheus did not start; see {self.log_file}")
            time.sleep(0.2)
        return process.pid


def probe_prometheus(url: str) -> str:
    return http_ready(url, "/-/ready")
