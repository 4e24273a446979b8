"""Headless Chromium screenshots of what a new user opens first, on the running local stack (after
`make demo`, or `mlops up` with a champion): a service's API docs, a drift report opened from the
reports index by a signed link, and the champion's page in the MLflow UI with its card.

    .venv/bin/python scripts/screenshots.py [--out docs/images/day-one]

Everything is served by the stack itself; Chromium's own network chatter is switched off, so the
pages render on a machine without internet or they do not render at all. Each page is also read as
text (Chromium's --dump-dom), and the script fails when a page lacks the content that shows it
really rendered (an empty Swagger shell, a 401 JSON, MLflow's spinner). Chromium is Debian's
(`apt-get install chromium`, which scripts/install-test-tools.sh does).
"""

from __future__ import annotations

import argparse
import contextlib
import html.parser
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.monitoring import ops_key
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import service_port

# Flags a headless Chromium needs on a closed network: without the background-networking ones it
# tries Google's hosts at every start.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--hide-scrollbars", "--window-size=1400,1000",
]  # fmt: skip


class ShotError(RuntimeError):
    """A page did not render what it should (or a component is not there)."""


@dataclass(frozen=True)
class Shot:
    name: str
    url: str
    must_show: tuple[str, ...]  # text the rendered DOM must contain
    wait_ms: int = 8000  # Chromium's virtual time budget: scripts and XHRs settle within it


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        raise ShotError("no Chromium: apt-get install chromium (scripts/install-test-tools.sh does)")
    return found


def _run_chromium(args: list[str], profile: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def capture(shot: Shot, out: Path) -> Path:
    """The page's rendered DOM must show `must_show`; then its screenshot is saved as <name>.png."""
    with tempfile.TemporaryDirectory() as folder:
        profile = Path(folder)
        budget = f"--virtual-time-budget={shot.wait_ms}"
        dom = _run_chromium([budget, "--dump-dom", shot.url], profile).stdout
        missing = [text for text in shot.must_show if text not in dom]
        if missing:
            raise ShotError(f"{shot.name}: {shot.url} rendered without {missing} ({len(dom)} bytes of DOM)")
        png = out / f"{shot.name}.png"
        _run_chromium([budget, f"--screenshot={png}", shot.url], profile)
    if not png.exists() or png.stat().st_size < 10_000:
        raise ShotError(f"{shot.name}: no screenshot, or a blank one, of {shot.url}")
    return png


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def report_links(settings: InfraSettings) -> tuple[str, str]:
    """(the signed index URL, the newest report's signed URL as the index links it)."""
    base = f"http://127.0.0.1:{service_port(settings, 'drift')}"
    key = ops_key(settings.secrets_dir / "api-keys.json")
    response = httpx.get(f"{base}/reports/links", headers={"X-API-Key": key}, timeout=30)
    if response.status_code != 200:
        raise ShotError(f"drift service: no signed index link ({response.status_code} {response.text[:200]})")
    index = str(response.json()["index"])
    parser = _Links()
    parser.feed(httpx.get(index, timeout=30).text)
    reports = [h for h in parser.hrefs if ".html" in h and "/reports/index" not in h]
    if not reports:
        raise ShotError("drift service: the reports index lists no report yet (run `make demo` first)")
    return index, httpx.URL(index).join(reports[0]).__str__()


def champion_version(tracking_uri: str, model: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(tracking_uri).get_model_version_by_alias(model, "champion").version)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_ui(settings: InfraSettings) -> Iterator[str]:
    """The MLflow UI on the stack's store, as the demo summary tells users to start it."""
    port = _free_port()
    store = (settings.state_dir / "mlflow" / "mlflow.db").resolve()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(REPO_ROOT / ".venv" / "bin" / "mlflow"), "ui", "--workers", "1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{store}"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if server.poll() is not None:
                raise ShotError(f"mlflow ui exited with {server.returncode}")
            time.sleep(1)
        else:
            raise ShotError("mlflow ui did not answer within 120 s")
        yield url
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(20)
        if server.poll() is None:
            server.kill()


def shots(settings: InfraSettings, mlflow_url: str, model: str, version: str) -> list[Shot]:
    index, report = report_links(settings)
    docs = f"http://127.0.0.1:{service_port(settings, 'serving')}/docs"
    return [
        Shot("api-docs", docs, ("opblock-summary-path", 'data-path="/predict"', "role)")),
        Shot("reports-index", index, ("Newest first", ".html?expires=")),
        Shot("drift-report", report, ("Share of Drifted Columns", "Drift Score"), wait_ms=15000),
        Shot("mlflow-model-card", f"{mlflow_url}/#/models/{model}/versions/{version}",
             ("Gate:", "Data: applications from"), wait_ms=15000),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images" / "day-one")
    parser.add_argument("--model", default="credit-risk", help="registered model name (default credit-risk)")
    args = parser.parse_args(argv)
    settings = InfraSettings()
    args.out.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{(settings.state_dir / 'mlflow' / 'mlflow.db').resolve()}"
    try:
        version = champion_version(tracking, args.model)
        with mlflow_ui(settings) as url:
            for shot in shots(settings, url, args.model, version):
                print(f"{shot.name}: {capture(shot, args.out)}", flush=True)
    except (ShotError, httpx.HTTPError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
