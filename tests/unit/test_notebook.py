"""examples/data_scientist.ipynb is a clean nbformat 4 notebook that compiles, and the runner that the
end-to-end tests use to execute it (examples/notebook.py) runs cells in order and names a failing one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from examples import make_notebook
from examples.notebook import CellFailed, code_cells, main, run_notebook

NOTEBOOK = make_notebook.NOTEBOOK


def stored() -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(NOTEBOOK.read_text())
    return notebook


def write(tmp_path: Path, *cells: tuple[str, str | list[str]]) -> Path:
    path = tmp_path / "tiny.ipynb"
    body: list[dict[str, Any]] = [
        {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": text}
        | ({"execution_count": None, "outputs": []} if kind == "code" else {})
        for i, (kind, text) in enumerate(cells)
    ]
    path.write_text(json.dumps({"cells": body, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_notebook_is_nbformat_4_without_outputs() -> None:
    notebook = stored()
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 5
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in ids)
    for cell in notebook["cells"]:
        assert cell["cell_type"] in {"markdown", "code"}
        assert isinstance(cell["metadata"], dict) and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        else:
            assert "outputs" not in cell and "execution_count" not in cell


def test_every_code_cell_compiles_and_needs_no_ipython() -> None:
    sources = code_cells(stored())
    assert len(sources) >= 6
    for number, source in enumerate(sources, start=1):
        compile(source, f"code cell {number}", "exec")
        magics = [line for line in source.splitlines() if line.lstrip().startswith(("%", "!"))]
        assert not magics, f"code cell {number} uses IPython syntax: {magics}"
        assert "display(" not in source, f"code cell {number} needs IPython's display()"


def test_notebook_is_what_its_generator_writes() -> None:
    assert NOTEBOOK.read_text() == make_notebook.render(), (
        "examples/data_scientist.ipynb is stale: run .venv/bin/python -m examples.make_notebook"
    )


def test_cells_run_in_order_in_one_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ("code", "x = 2"), ("markdown", "# not code"), ("code", ["y = x * 3\n", "y + 1"]))

    namespace = run_notebook(path)

    assert namespace["y"] == 6
    assert capsys.readouterr().out == "7\n"  # a trailing expression is shown, as in Jupyter


def test_env_is_set_while_the_cells_run_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEBOOK_TEST_KEPT", "before")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///somebody-elses.db")  # must not leak in
    monkeypatch.delenv("NOTEBOOK_TEST_NEW", raising=False)
    path = write(
        tmp_path,
        ("code", "import os\nseen = os.environ['NOTEBOOK_TEST_KEPT'], os.environ['NOTEBOOK_TEST_NEW']"),
        ("code", "leaked = os.environ.get('MLFLOW_TRACKING_URI')"),
    )

    namespace = run_notebook(path, env={"NOTEBOOK_TEST_KEPT": "during", "NOTEBOOK_TEST_NEW": "during"})

    assert namespace["seen"] == ("during", "during") and namespace["leaked"] is None
    assert os.environ["NOTEBOOK_TEST_KEPT"] == "before" and "NOTEBOOK_TEST_NEW" not in os.environ
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///somebody-elses.db"


def test_a_failing_cell_is_named_and_stops_the_run(tmp_path: Path) -> None:
    path = write(tmp_path, ("code", "ran = ['first']"), ("markdown", "text"), ("code", "1 / 0"),
                 ("code", "ran.append('third')"))  # fmt: skip

    expected = r"tiny\.ipynb: code cell 2 failed .*'1 / 0'.*ZeroDivisionError"
    with pytest.raises(CellFailed, match=expected) as caught:
        run_notebook(path)

    assert caught.value.number == 2 and isinstance(caught.value.__cause__, ZeroDivisionError)
    assert caught.value.namespace["ran"] == ["first"]


def test_a_cell_that_does_not_parse_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, ("code", "ok = True"), ("code", "def broken(:\n    pass"))

    with pytest.raises(CellFailed, match=r"code cell 2 failed .*SyntaxError"):
        run_notebook(path)


def test_the_command_line_names_the_failing_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ("code", "assert 1 + 1 == 3, 'arithmetic'"))

    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: tiny.ipynb: code cell 1 failed" in err and "AssertionError: arithmetic" in err
    assert "<tiny.ipynb code cell 1>" in err  # the traceback points into the cell
