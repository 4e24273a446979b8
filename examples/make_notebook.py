"""Write `examples/data_scientist.ipynb` from its cells (nbformat 4.5, no outputs).

The notebook is generated so that it stays reviewable as Python: edit the cells in
`examples/cells_training.py` (connect, state, retrain, gate) and `examples/cells_models.py` (MLflow,
prediction, explanation, lineage), then run
`.venv/bin/python -m examples.make_notebook`. `tests/unit/test_notebook.py` fails when the two differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from examples import cells_models, cells_training

NOTEBOOK = Path(__file__).resolve().parent / "data_scientist.ipynb"

CELLS: list[tuple[str, str]] = cells_training.CELLS + cells_models.CELLS


def cell(index: int, kind: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cell_type": kind,
        "id": f"cell-{index:02d}",
        "metadata": {},
        "source": text.splitlines(keepends=True),
    }
    if kind == "code":
        body |= {"execution_count": None, "outputs": []}
    return body


def build() -> dict[str, Any]:
    """The notebook as nbformat 4.5 JSON (a dict)."""
    return {
        "cells": [cell(i, kind, text) for i, (kind, text) in enumerate(CELLS)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    NOTEBOOK.write_text(render())
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
