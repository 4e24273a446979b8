"""Issue 20: every service's HTTP API fuzzed from its own OpenAPI document, with every role's key, on
every test run.

A whole stack is started with the `mlops` CLI (its own ports and state folder). Each operation's
document says which roles it admits (`x-roles`, read from the routes' own dependencies), and:

- **each role's key fuzzes the operations it is admitted to** with schemathesis (property-based: the
  documents' examples, boundary values, then generated valid and invalid requests). The admin key,
  admitted everywhere, fuzzes the open probes and is checked on every route by the matrix below. A
  run fails on any 5xx, on any answer the document does not declare (status code, content type or
  body schema), and on the fuzzer's warnings listed in schemathesis.toml (schema-valid requests
  mostly refused, unresolvable references, a listed role refused everything);
- **the role matrix** sends one request per operation with every role's key, and with none: a role
  the document does not list is refused with a 403 in the one error shape, a listed one is not
  refused, no key is a 401. So the documented roles are the enforced ones, both ways.

The seed is fixed, so a run is repeatable; the budget is small for CI and raised locally
(docs/fuzzing.md):

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
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import REPO_ROOT
from infra.supervisor import SERVICE_ORDER
from servicekit.auth import Role
from tests.e2e.stack import logs, stack_env
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT

# The stack's start (Kafka, MLflow, seven services) counts against the first test's timeout.
pytestmark = pytest.mark.timeout(900)

PORT = TEST_KAFKA_PORT + 600
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 5000
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SEED = int(os.environ.get("MLOPS_FUZZ_SEED", "20"))
EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", "8"))  # per operation and phase
# Unset, a run ends when every operation had its examples; set, fuzzing repeats until it is spent.
MAX_TIME_S = int(os.environ.get("MLOPS_FUZZ_MAX_TIME_S", "0"))  # per service and role
SCHEMATHESIS = Path(sys.executable).with_name("st")
# Which of the fuzzer's warnings fail a run (a document that says less than the service enforces, a
# reference it cannot resolve, a listed role refused everything): see the file.
CONFIG = Path(__file__).with_name("schemathesis.toml")
ROLES = [role.value for role in Role]


@cache
def published(service: str) -> dict[str, Any]:
    """The service's document as exported in docs/ (the test run checks it is current), read at
    collection time to know which role fuzzes what; the live one is fuzzed."""
    path = REPO_ROOT / "docs" / "openapi" / f"{service}.json"
    assert path.exists(), f"{service} has no exported OpenAPI document: run `make schemas`"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def operations(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in published(service)["paths"].items()
        for method, operation in item.items()
    ]


def fuzzed_by(service: str, role: str) -> list[str]:
    """Operation ids the role's key fuzzes: those admitting it; the admin key takes the open probes
    and any operation admitting no other role."""
    chosen = []
    for _, _, operation in operations(service):
        roles = operation["x-roles"]
        mine = role in roles if role != Role.ADMIN else not (set(roles) - {Role.ADMIN.value})
        if mine:
            chosen.append(operation["operationId"])
    return chosen


FUZZ_RUNS = [(service, role) for service in SERVICE_ORDER for role in ROLES if fuzzed_by(service, role)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("fuzz")
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    env["MLOPS_SERVICES"] = ",".join(
        SERVICE_ORDER
    )  # the optional ones too (annotation, without Label Studio)
    up = mlops("up", env=env, timeout=400)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        mlops("down", env=env)


def base_url(service: str) -> str:
    return f"http://127.0.0.1:{FIRST_SERVICE_PORT + SERVICE_ORDER.index(service)}"


def key_of(env: dict[str, str], role: str) -> str:
    """The stack's development key of `role` (Label Studio's webhook key is the one with that role)."""
    keys = json.loads((Path(env["MLOPS_STATE_DIR"]) / "secrets" / "api-keys.json").read_text())
    key: str = next(entry["key"] for entry in keys.values() if entry["role"] == role)
    return key


def fuzz(service: str, key: str, operation_ids: list[str], report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base_url(service)}/openapi.json",
        "--checks", CHECKS,
        "--header", f"X-API-Key: {key}",
        *(option for operation_id in operation_ids for option in ("--include-operation-id", operation_id)),
        "--seed", str(SEED),
        "--max-examples", str(EXAMPLES),
        *(["--max-time", str(MAX_TIME_S)] if MAX_TIME_S else []),
        "--phases", "examples,coverage,fuzzing",
        "--generation-with-security-parameters", "false",  # the key is ours; the matrix tries others
        "--generation-database", "none",
        "--workers", "1",  # the machine is shared; one request at a time
        "--request-timeout", "60",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip
    # In the test's folder: schemathesis keeps its replay cases in ./.schemathesis.
    return subprocess.run(
        command, cwd=report.parent, capture_output=True, text=True, timeout=MAX_TIME_S + 400, check=False
    )


def test_the_published_documents_are_the_served_ones(stack: dict[str, str]) -> None:
    for service in SERVICE_ORDER:
        served = httpx.get(f"{base_url(service)}/openapi.json", timeout=30).json()
        assert served["paths"] == published(service)["paths"], service


@pytest.mark.parametrize(("service", "role"), FUZZ_RUNS, ids=[f"{s}-{r}" for s, r in FUZZ_RUNS])
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    stack: dict[str, str], service: str, role: str, tmp_path: Path
) -> None:
    operation_ids = fuzzed_by(service, role)
    result = fuzz(service, key_of(stack, role), operation_ids, tmp_path / "junit.xml")
    state = Path(stack["MLOPS_STATE_DIR"])
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}\n{logs(state)}"
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", result.stdout)
    assert selected is not None, result.stdout[-3000:]
    # Every operation the role may call was exercised, and only those.
    assert int(selected.group(1)) == int(selected.group(3)) == len(operation_ids), result.stdout[-3000:]
    # The service survived what it was sent.
    assert httpx.get(f"{base_url(service)}/health", timeout=10).json()["status"] == "ok"


def test_serving_without_a_champion_says_so(stack: dict[str, str]) -> None:
    """The one 5xx schemathesis.toml admits (serving's POST /predict and POST /batch-scores, 503) is
    the stack's state: no model promoted yet. Any body that needs a model gets that reason, none
    another 5xx."""
    key = {"X-API-Key": key_of(stack, "client")}
    bodies = [{"features": {"age": 30}}, {"instances": [{"entity_id": "a"}, {"features": {}}]}]
    for body in bodies:
        response = httpx.post(f"{base_url('serving')}/predict", json=body, headers=key, timeout=30)
        assert response.status_code == 503 and response.json()["code"] == "no_champion", response.text
    ready = httpx.get(f"{base_url('serving')}/model", headers=key, timeout=30).json()
    assert ready.get("champion") is None, ready
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    ops = {"X-API-Key": key_of(stack, "ops")}
    batch = httpx.post(f"{base_url('serving')}/batch-scores", json=window, headers=ops, timeout=30)
    assert batch.status_code == 503 and batch.json()["code"] == "no_champion", batch.text


def probe(service: str, path: str, method: str, operation: dict[str, Any], key: str | None) -> httpx.Response:
    """One request to the operation: path parameters "1", a JSON body `{}`. The role check runs
    before the body and parameters are validated, so a refused role is a 403 whatever is sent."""
    url = base_url(service) + re.sub(r"\{[^}]+\}", "1", path)
    headers = {"X-API-Key": key} if key is not None else {}
    body = {"json": {}} if "requestBody" in operation else {}
    return httpx.request(method.upper(), url, headers=headers, timeout=60, **body)  # type: ignore[arg-type]


@pytest.mark.parametrize("service", SERVICE_ORDER)
def test_every_role_is_refused_or_admitted_as_its_document_says(stack: dict[str, str], service: str) -> None:
    wrong = []
    for path, method, operation in operations(service):
        admitted = set(operation["x-roles"])
        for role in [*ROLES, None]:
            response = probe(service, path, method, operation, key_of(stack, role) if role else None)
            if not admitted:  # an open probe: no key needed, none refused
                ok = response.status_code not in (401, 403)
            elif role is None:
                ok = response.status_code == 401 and response.json()["code"] == "unauthenticated"
            elif role in admitted:
                ok = response.status_code not in (401, 403) and response.status_code < 500
            else:
                body = response.json() if response.status_code == 403 else {}
                ok = body.get("code") == "forbidden" and f"role '{role}'" in body.get("detail", "")
            if not ok:
                who, answer = role or "no key", f"{response.status_code} {response.text[:200]}"
                wrong.append(f"{method.upper()} {path} as {who}: {answer}")
    assert not wrong, "\n".join(wrong)
