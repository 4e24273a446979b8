#!/usr/bin/env bash
# NannyML in a venv of its own (its pins clash with the project's), for the baseline column of
# bench/performance_estimation.py (--nannyml). Usage: scripts/install-nannyml.sh [VENV_DIR]
# (default .local/venvs/nannyml, git-ignored). Never touches the project's .venv.
set -euo pipefail
venv="${1:-.local/venvs/nannyml}"
python="${PYTHON:-python3}"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import nannyml" 2>/dev/null; then exit 0; fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "nannyml==0.13.*" pyarrow statsmodels  # statsmodels: imported by nannyml.plots, not declared
"$venv/bin/python" -c "import nannyml; print('nannyml', nannyml.__version__)"
