"""Write the JSON Schemas and the Markdown catalogue of every event; `--check` verifies them.

python -m contracts.export [--check] [DIR]      (DIR defaults to docs/events)
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.catalogue import render_catalogue
from contracts.envelope import Event
from contracts.events import ALL_EVENTS

DEFAULT_DIR = Path("docs/events")


def schema_path(cls: type[Event[Any]]) -> str:
    """Path of an event's schema file, relative to the export directory."""
    return f"schemas/{cls.type_name()}.v{cls.version()}.json"


def schema_text(schema: dict[str, Any]) -> str:
    """Canonical text of a schema file: sorted keys, indent 2, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(events: tuple[type[Event[Any]], ...] = ALL_EVENTS) -> dict[str, str]:
    """Every generated file, by path relative to the export directory."""
    files = {schema_path(cls): schema_text(cls.model_json_schema()) for cls in events}
    files["catalogue.md"] = render_catalogue(events)
    return files


def stale_files(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Generated files that are missing or differ on disk. Older schema versions are left alone."""
    return [
        rel
        for rel, text in files.items()
        if not (out_dir / rel).is_file() or (out_dir / rel).read_text(encoding="utf-8") != text
    ]


def write(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Write the stale files; return what was written."""
    stale = stale_files(out_dir, files)
    for rel in stale:
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel], encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.export", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if files are out of date")
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR, help="output directory")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = stale_files(args.dir, files)
        for rel in stale:
            print(f"out of date: {args.dir / rel}")
        if stale:
            print("run `python -m contracts.export` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for rel in write(args.dir, files):
        print(f"wrote {args.dir / rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
