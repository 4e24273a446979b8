"""The OpenAPI document of every service, written to docs/openapi/<service>.json.

Each is what the running service serves at `/openapi.json` with its default settings (the limits in
POST /records come from them). `--check` fails when a committed document is out of date (run by the
test script), so the documents in docs/ stay the ones the fuzzer (tests/e2e/test_api_fuzz.py) holds
the services to.

    python -m infra.openapi docs/openapi [--check]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from infra.supervisor import existing_services


def documents() -> dict[str, dict[str, Any]]:
    """Every service's document, by service name."""
    return {
        name: importlib.import_module(f"services.{name}.app").create_app().openapi()
        for name in existing_services()
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", default="docs/openapi", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if a committed document is out of date")
    args = parser.parse_args(argv)
    wanted = {args.folder / f"{name}.json": render(doc) for name, doc in documents().items()}
    if args.check:
        stale = [str(p) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
        stale += [str(p) for p in args.folder.glob("*.json") if p not in wanted]
        if stale:
            print(f"out of date: {', '.join(sorted(stale))}: run `make schemas`", file=sys.stderr)
            return 1
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    for path in args.folder.glob("*.json"):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
