"""The house rules on imports, read from the code itself: services never import each other (nor the
ops, demo, benchmark or client code), the kit imports no service and no ops tooling, the client imports
neither, contracts depend only on pydantic and the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
OUTSIDE_SERVICES = ("infra", "bench", "workbench", "tests", "examples", "scripts", "mlops_client")


def imported_modules(package: Path) -> dict[str, set[str]]:
    """Each Python file under `package` (relative path) -> the absolute modules it imports."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)] = names
    return found


def offending(package: Path, banned: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{file} imports {name}"
        for file, names in imported_modules(package).items()
        for name in names
        if name.split(".")[0] in banned or name.startswith(banned)
    )


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_no_ops_demo_or_bench_code(service: str) -> None:
    others = tuple(f"services.{s}" for s in SERVICES if s != service)
    assert offending(ROOT / "services" / service, others + OUTSIDE_SERVICES) == []


def test_the_kit_imports_no_service_and_no_ops_tooling() -> None:
    assert offending(ROOT / "servicekit", ("services", *OUTSIDE_SERVICES)) == []


def test_the_client_imports_no_service_kit_or_demo_code() -> None:
    """The client installs and runs without the services: it speaks to them over HTTP only (its local
    stack helper reads the `mlops` CLI's settings from infra, nothing else)."""
    banned = ("services", "servicekit", "bench", "workbench", "tests", "examples", "scripts")
    assert offending(ROOT / "mlops_client", banned) == []


def test_contracts_depend_on_pydantic_and_the_standard_library_only() -> None:
    allowed = {"contracts", "pydantic", "pydantic_core", "typing_extensions", "__future__"}
    imports = imported_modules(ROOT / "contracts")
    foreign = sorted(
        f"{file} imports {name}"
        for file, names in imports.items()
        for name in names
        if name.split(".")[0] not in allowed and name.split(".")[0] not in sys.stdlib_module_names
    )
    assert foreign == []


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The checker itself: an import it must refuse is refused."""
    (tmp_path / "bad.py").write_text("from services.serving.app import create_app\nimport infra.cli\n")
    found = {name for names in imported_modules(tmp_path).values() for name in names}
    assert found == {"services.serving.app", "infra.cli"}
