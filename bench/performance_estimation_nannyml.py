"""NannyML's own CBPE on the streams of bench/performance_estimation.py, in NannyML's venv.

NannyML 0.13 pins versions the project does not use, so it lives in a venv of its own
(scripts/install-nannyml.sh, default .local/venvs/nannyml). The bench writes each stream to an .npz
(reference: a labelled sample of the pre-change population; analysis: the stream), runs this file
with that venv's Python, and reads back NannyML's estimated accuracy and ROC AUC per chunk of
`chunk` rows. NannyML fits on the reference (including its own recalibration, isotonic by default,
when the reference says the scores are not calibrated) and estimates the analysis with no labels.

This file imports no project module: as a script it only needs numpy, pandas and nannyml.
    <venv>/bin/python bench/performance_estimation_nannyml.py IN_DIR OUT.json CHUNK
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()


def write_case(
    folder: Path, key: str, reference: tuple[np.ndarray, np.ndarray], analysis: tuple[np.ndarray, np.ndarray]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{key}.npz", ref_p=reference[0], ref_y=reference[1], p=analysis[0], y=analysis[1])


def run_nannyml(venv: Path, folder: Path, chunk: int) -> dict[str, Any]:
    """Runs this file in the venv; {case key: {accuracy: [...], roc_auc: [...]}} plus timing."""
    out = folder / "nannyml.json"
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    subprocess.run(
        [str(venv / "bin" / "python"), str(HERE), str(folder), str(out), str(chunk)],
        check=True,
        env=env,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def estimate_all(folder: Path, chunk: int) -> dict[str, Any]:  # pragma: no cover - NannyML's venv
    import warnings

    import nannyml
    import pandas as pd

    warnings.filterwarnings("ignore", message="The resulting number of chunks is too low")

    out: dict[str, Any] = {"nannyml": nannyml.__version__, "cases": {}}
    started = time.perf_counter()
    rows = 0
    for path in sorted(folder.glob("*.npz")):
        data = np.load(path)

        def frame(p: np.ndarray, y: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame({"p": p, "pred": (p >= 0.5).astype(int), "y": y.astype(int)})

        cbpe = nannyml.CBPE(
            problem_type="classification_binary",
            y_pred_proba="p",
            y_pred="pred",
            y_true="y",
            metrics=["roc_auc", "accuracy"],
            chunk_size=chunk,
        )
        cbpe.fit(frame(data["ref_p"], data["ref_y"]))
        analysis = frame(data["p"], data["y"]).drop(columns=["y"])
        table = cbpe.estimate(analysis).filter(period="analysis").to_df()
        rows += len(analysis)
        out["cases"][path.stem] = {
            metric: [float(v) for v in table[(metric, "value")]] for metric in ("accuracy", "roc_auc")
        }
    out["seconds"] = time.perf_counter() - started
    out["us_per_row"] = out["seconds"] / max(1, rows) * 1e6
    return out


if __name__ == "__main__":  # pragma: no cover - run by run_nannyml in NannyML's venv
    in_dir, out_file, chunk_rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    Path(out_file).write_text(json.dumps(estimate_all(in_dir, chunk_rows)))
