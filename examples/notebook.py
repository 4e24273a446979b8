"""Run a notebook's code cells in order, in one namespace, with plain `exec`: no Jupyter needed.

This is how tests run `examples/data_scientist.ipynb` against a live stack:

    namespace = run_notebook(Path("examples/data_scientist.ipynb"), env=stack_env)
    assert namespace["outcome"].status in {"promoted", "rejected"}

`env` (e.g. the MLOPS_STATE_DIR, MLOPS_FIRST_SERVICE_PORT ... a test started its stack with) is set in
`os.environ` while the cells run and restored afterwards, since the notebook reads the `mlops` settings.

As in Jupyter, a cell whose last statement is an expression shows its value (printed here; `echo=False`
keeps quiet). A failing cell raises `CellFailed`, which names the cell and keeps the namespace so far.
From the shell: `.venv/bin/python -m examples.notebook examples/data_scientist.ipynb`.
"""

from __future__ import annotations

import argparse
import ast
import json
import linecache
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CellFailed(RuntimeError):
    """A code cell raised (or did not parse). `number` counts code cells from 1, as a reader would."""

    def __init__(self, path: Path, number: int, source: str, namespace: dict[str, Any]) -> None:
        first_line = next((line.strip() for line in source.splitlines() if line.strip()), "")
        self.path, self.number, self.source, self.namespace = path, number, source, namespace
        super().__init__(f"{path.name}: code cell {number} failed (it starts {first_line!r})")

    def __str__(self) -> str:
        cause = self.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        return f"{self.args[0]}{detail}"


def code_cells(notebook: dict[str, Any]) -> list[str]:
    """The source of each code cell, in order (nbformat stores a source as a string or a list of lines)."""
    return [_text(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def run_notebook(path: Path, *, env: Mapping[str, str] | None = None, echo: bool = True) -> dict[str, Any]:
    """Execute the code cells of the notebook at `path` in order, in one namespace, and return it."""
    path = Path(path)
    namespace: dict[str, Any] = {"__name__": "__notebook__", "__file__": str(path.resolve())}
    with environment(env or {}):
        for number, source in enumerate(code_cells(json.loads(path.read_text())), start=1):
            try:
                run_cell(source, f"<{path.name} code cell {number}>", namespace, echo=echo)
            except Exception as exc:
                raise CellFailed(path, number, source, namespace) from exc
    return namespace


def run_cell(source: str, filename: str, namespace: dict[str, Any], *, echo: bool = True) -> Any:
    """Run one cell; return (and with `echo`, print) the value of a trailing expression, as Jupyter does."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    tree = ast.parse(source, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)
    if not isinstance(last, ast.Expr):
        return None
    value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
    if echo and value is not None:
        print(repr(value))
    return value


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run the block with exactly `env` as the environment (nothing given: the current one), then
    restore it. Exactly: a variable the caller's process has and `env` lacks (say the tracking URI
    of another MLflow store) would otherwise point the notebook elsewhere."""
    if not env:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a notebook's code cells without Jupyter.")
    parser.add_argument("notebook", type=Path, help="path of the .ipynb file")
    parser.add_argument("--quiet", action="store_true", help="do not print the cells' trailing values")
    args = parser.parse_args(argv)
    try:
        run_notebook(args.notebook, echo=not args.quiet)
    except CellFailed as failed:
        if failed.__cause__ is not None:
            traceback.print_exception(failed.__cause__, file=sys.stderr)
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
