"""The OpenAPI document of every service, written to docs/openapi/<service>.json, and the README's
table of every route drawn from them.

Each is what the running service serves at `/openapi.json` with its default settings (the limits in
POST /records come from them). `--check` fails when a committed document or the README's table is
out of date (run by the test script), so the documents in docs/ stay the ones the fuzzer
(tests/e2e/test_api_fuzz.py) holds the services to, and the README lists what they say.

    python -m infra.openapi docs/openapi [--check]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from infra.generated import render, sync
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, existing_services

README = REPO_ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- routes:start (make schemas) -->", "<!-- routes:end -->"
# The default ports (not this shell's MLOPS_FIRST_SERVICE_PORT): the README documents the defaults.
FIRST_PORT: int = InfraSettings.model_fields["first_service_port"].default


def documents() -> dict[str, dict[str, Any]]:
    """Every service's document, by service name."""
    return {
        name: importlib.import_module(f"services.{name}.app").create_app().openapi()
        for name in existing_services()
    }


def routes_table(docs: dict[str, dict[str, Any]]) -> str:
    """Markdown: every operation of every document, with the roles it admits and its summary."""
    rows = ["| service (port) | route | roles | what |", "| --- | --- | --- | --- |"]
    for name in sorted(docs, key=SERVICE_ORDER.index):
        for path, item in sorted(docs[name]["paths"].items()):
            for method, operation in sorted(item.items()):
                roles = ", ".join(operation.get("x-roles", [])) or "open"
                port = FIRST_PORT + SERVICE_ORDER.index(name)
                summary = operation.get("summary", "").replace("|", "\\|")
                rows.append(f"| {name} ({port}) | `{method.upper()} {path}` | {roles} | {summary} |")
    return "\n".join(rows)


def with_table(readme: str, table: str) -> str:
    before, found, rest = readme.partition(TABLE_START)
    _, ended, after = rest.partition(TABLE_END)
    if not (found and ended):
        raise SystemExit(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    return f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", default="docs/openapi", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if a committed document is out of date")
    args = parser.parse_args(argv)
    docs = documents()
    wanted = {args.folder / f"{name}.json": render(doc) for name, doc in docs.items()}
    wanted[README] = with_table(README.read_text(), routes_table(docs))
    return sync(wanted, check=args.check, obsolete=args.folder.glob("*.json"))


if __name__ == "__main__":
    sys.exit(main())
