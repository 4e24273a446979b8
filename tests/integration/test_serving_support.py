"""A world for the serving tests that need real components: a temp MLflow (SQLite) with three
versions of the reference model, a temp Feast repo with 200 applications, API keys and unique topics.
Built once per test process (integration and e2e share it)."""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from servicekit.auth import Role, write_dev_keys
from services.serving.app import create_app
from services.serving.settings import ServingSettings
from tests.support import create_topic
from workbench.serving_devdata import push_feature_rows, register_reference_model

MODEL = "credit-risk"
SMALL = ("duration_in_month", "credit_amount", "age_in_years", "purpose", "housing")


@dataclass(frozen=True)
class World:
    root: Path
    mlflow_uri: str
    artifact_root: Path
    feast_dir: Path
    keys_file: Path
    keys: dict[str, str]
    full: str  # champion at start: every feature
    small: str  # five features, another threshold
    spare: str  # every feature; registered for corruption tests
    rows: dict[str, dict[str, object]]
    suffix: str

    def topic(self, name: str) -> str:
        return f"test.serving.{self.suffix}.{name}"


@functools.cache
def world() -> World:
    root = Path(tempfile.mkdtemp(prefix="serving-test-"))
    atexit.register(shutil.rmtree, root, True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = root / "artifacts"
    full = register_reference_model(uri, artifacts, MODEL)
    small = register_reference_model(
        uri, artifacts, MODEL, features=SMALL, c=0.05, threshold=0.3, promote=False
    )
    spare = register_reference_model(uri, artifacts, MODEL, c=0.5, promote=False)
    frame = push_feature_rows(root / "feast", limit=200)
    rows = {
        str(r["application_id"]): {k: v for k, v in r.items() if k not in ("application_id", "applied_at")}
        for r in frame.to_dict("records")
    }
    _, keys_file = write_dev_keys(root / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((root / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    return World(
        root,
        uri,
        artifacts,
        root / "feast",
        keys_file,
        keys,
        full,
        small,
        spare,
        rows,
        uuid.uuid4().hex[:8],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serving_settings(bootstrap: str, w: World, prefix: str = "") -> ServingSettings:
    """Serving on the world's Feast repo and registry, swapping on model.promoted only, on the world's
    topics named `<prefix>predictions`, `<prefix>labels` and `<prefix>promotions`. A fresh instance id
    each time, as each replica process gets."""
    return ServingSettings(
        kafka_bootstrap_servers=bootstrap,
        state_dir=w.root / "state",
        feast_repo_dir=w.feast_dir,
        mlflow_tracking_uri=w.mlflow_uri,
        api_keys_file=w.keys_file,
        champion_poll_s=0,  # swaps happen on model.promoted only
        predictions_topic=w.topic(f"{prefix}predictions"),
        labels_topic=w.topic(f"{prefix}labels"),
        promotions_topic=w.topic(f"{prefix}promotions"),
    )


@contextmanager
def serving_in_thread(settings: ServingSettings, topics: dict[str, int]) -> Iterator[str]:
    """The serving app under uvicorn in a thread, once `topics` (name -> partitions) exist and it is
    ready: yields its base URL, and stops it after."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=free_port(), log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)

    async def create_topics() -> None:
        for name, partitions in topics.items():
            await create_topic(settings.kafka_bootstrap_servers, name, partitions=partitions)

    asyncio.run(create_topics())
    thread.start()
    base = f"http://127.0.0.1:{config.port}"
    asyncio.run(wait_ready(base))
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


async def wait_ready(
    base: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 240
) -> None:
    """Until serving at `base` answers /ready 200; a process of ours that exits meanwhile fails at once."""
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(int(timeout_s * 10)):
            assert process is None or process.poll() is None, "serving exited during startup"
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serving never became ready")
