"""A world for the serving tests that need real components: a temp MLflow (SQLite) with three
versions of the reference model, a temp Feast repo with 200 applications, API keys and unique topics.
Built once per test process (integration and e2e share it)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from servicekit.auth import Role, write_dev_keys
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
