"""feature_repo.quiet_typeguard: Feast's classes load uninstrumented in every first-party entry point,
anything else typeguard decorates is still checked, and a process that imported Feast first is left
as it was. The import-time cases run in a fresh interpreter: the pytest process loaded Feast long
ago."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from feature_repo.quiet_typeguard import leave_feast_uninstrumented
from infra.settings import REPO_ROOT

PROBE = """
import json, sys
{first}
import typeguard
import feast.feature_view as fv
from feature_repo.quiet_typeguard import leave_feast_uninstrumented
names = fv.FeatureView.__init__.__code__.co_names
print(json.dumps({{
    "instrumented": any(n.startswith("typeguard") for n in names),
    "again": leave_feast_uninstrumented(),
    "patched": typeguard.typechecked is not typeguard._decorators.typechecked,
}}))
"""


def probe(first: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("package", ["services", "infra"])  # `python -m services.<name>`, `mlops`
def test_each_process_entry_point_loads_feast_uninstrumented(package: str) -> None:
    assert probe(f"import {package}") == {"instrumented": False, "again": True, "patched": True}


@pytest.mark.parametrize("package", ["tests", "bench", "workbench"])
def test_the_other_first_party_packages_import_feature_repo_first(package: str) -> None:
    # Read, not run: a fresh interpreter per package costs seconds of CPU, and the order is the point.
    tree = ast.parse((REPO_ROOT / package / "__init__.py").read_text())
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports and isinstance(imports[0], ast.Import), package
    assert [alias.name for alias in imports[0].names] == ["feature_repo"], package


def test_feast_imported_before_is_reported_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import feast  # noqa: F401  (in this process already; here it stands for "imported first")
    import typeguard

    monkeypatch.setattr(typeguard, "typechecked", typeguard._decorators.typechecked)  # as if never wrapped
    assert leave_feast_uninstrumented() is False
    assert typeguard.typechecked is typeguard._decorators.typechecked


def test_a_process_that_never_loads_feast_does_not_load_typeguard_either() -> None:
    code = "import sys, services.ingest.app; print(sorted({'feast', 'typeguard'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_what_is_not_feasts_is_still_checked() -> None:
    script = """
import feature_repo, feast, typeguard
assert typeguard.typechecked is not typeguard._decorators.typechecked  # wrapped, on Feast's import
@typeguard.typechecked
def double(x: int) -> int:
    return 2 * x
@typeguard.typechecked()
def halve(x: int) -> int:
    return x // 2
assert any(n.startswith("typeguard") for n in double.__code__.co_names)  # what the probe looks for
assert double(2) == 4 and halve(4) == 2
for call in (lambda: double("2"), lambda: halve("4")):
    try:
        call()
    except typeguard.TypeCheckError:
        continue
    raise SystemExit("not checked")
print("checked")
"""
    # A file, not -c: typeguard instruments from the module's source.
    path = REPO_ROOT / ".local" / "test-quiet-typeguard.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    try:
        done = subprocess.run(
            [sys.executable, str(path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    assert done.returncode == 0 and done.stdout.strip() == "checked", done.stdout + done.stderr


@pytest.mark.parametrize("runs", ["0", "-1", "many"])
def test_the_benchmark_refuses_a_run_count_that_is_not_a_positive_number(runs: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.feast_import", "--runs", runs],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--runs" in done.stderr and "Traceback" not in done.stderr, done.stderr
