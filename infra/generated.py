"""Documents generated from the code (docs/asyncapi.json, docs/openapi/*.json, the README's route
table): written by `make schemas`, and checked by the test script, which fails when a committed
copy differs from what the code generates now."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def render(doc: dict[str, Any]) -> str:
    """The one JSON layout of a generated document (stable, so a diff shows real changes)."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def sync(wanted: dict[Path, str], *, check: bool, obsolete: Iterable[Path] = ()) -> int:
    """Write `wanted` (path -> text) and delete `obsolete`, or with `check` only report (exit 1)
    which of them are out of date."""
    obsolete = [path for path in obsolete if path not in wanted]
    if check:
        stale = [str(p) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
        stale += [str(p) for p in obsolete]
        if stale:
            print(f"out of date: {', '.join(sorted(stale))}: run `make schemas`", file=sys.stderr)
            return 1
        return 0
    for path in obsolete:
        path.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0
