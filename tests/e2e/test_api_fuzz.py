"""Issue 20: every service's HTTP API fuzzed from its own OpenAPI document, on every test run.

A whole stack is started with the `mlops` CLI (its own ports and state folder), and schemathesis
(property-based: the documents' examples, boundary values, then generated valid and invalid requests)
sends requests to each service with the admin key, which every route admits. It fails on any 5xx and
on any answer the document does not declare: status code, content type or body schema. The seed is
fixed, so a run is repeatable; the budget is small for CI and raised locally (docs/fuzzing.md):

    MLOPS_FUZZ_EXAMPLES=100 MLOPS_FUZZ_MAX_TIME_S=120 .venv/bin/python -m pytest tests/e2e/test_api_fuzz.py

Every route is fuzzed, the mutating ones too: the stack is a throwaway one (an erasure, a pause or a
training request there disturbs nothing but itself), and each process must still answer after.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.supervisor import SERVICE_ORDER
from tests.e2e.stack import logs, stack_env
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 600
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 5000
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SEED = int(os.environ.get("MLOPS_FUZZ_SEED", "20"))
EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", "8"))  # per operation and phase
# Unset, a run ends when every operation had its examples; set, fuzzing repeats until it is spent.
MAX_TIME_S = int(os.environ.get("MLOPS_FUZZ_MAX_TIME_S", "0"))  # per service
SCHEMATHESIS = Path(sys.executable).with_name("st")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("fuzz")
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    up = mlops("up", env=env, timeout=400)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        mlops("down", env=env)


def base_url(service: str) -> str:
    return f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index(service)}"


def admin_key(env: dict[str, str]) -> str:
    keys = json.loads((Path(env["MLOPS_STATE_DIR"]) / "secrets" / "api-keys.json").read_text())
    key: str = keys["dev-admin"]["key"]
    return key


def fuzz(service: str, key: str, report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "run", f"{base_url(service)}/openapi.json",
        "--checks", CHECKS,
        "--header", f"X-API-Key: {key}",
        "--seed", str(SEED),
        "--max-examples", str(EXAMPLES),
        *(["--max-time", str(MAX_TIME_S)] if MAX_TIME_S else []),
        "--phases", "examples,coverage,fuzzing",
        "--generation-with-security-parameters", "false",  # the key is ours; 401s are unit-tested
        "--generation-database", "none",
        "--workers", "1",  # the machine is shared; one request at a time
        "--request-timeout", "60",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip
    # In the test's folder: schemathesis keeps its replay cases in ./.schemathesis.
    return subprocess.run(
        command, cwd=report.parent, capture_output=True, text=True, timeout=MAX_TIME_S + 300, check=False
    )


@pytest.mark.parametrize("service", SERVICE_ORDER)
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    stack: dict[str, str], service: str, tmp_path: Path
) -> None:
    result = fuzz(service, admin_key(stack), tmp_path / "junit.xml")
    state = Path(stack["MLOPS_STATE_DIR"])
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}\n{logs(state)}"
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", result.stdout)
    assert selected is not None, result.stdout[-3000:]
    assert selected.group(1) == selected.group(2) == selected.group(3), result.stdout[-3000:]
    # The service survived what it was sent.
    assert httpx.get(f"{base_url(service)}/health", timeout=10).json()["status"] == "ok"
