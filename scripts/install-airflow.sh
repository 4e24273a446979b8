#!/usr/bin/env bash
# Apache Airflow in a venv of its own (its pins clash with the project's lock), for the nightly DAG of
# infra/airflow/dags (docs/operations.md). Pinned, with the versions pip resolved once kept in
# requirements/airflow-constraints.txt (Airflow's own constraints URL is not reachable from every
# machine). Then AIRFLOW_HOME (.local/airflow: SQLite metadata, no example DAGs) is migrated once.
# Usage: scripts/install-airflow.sh [VENV_DIR] (default .local/venvs/airflow, git-ignored).
# Idempotent and quick when already installed. Never touches the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.10.5
venv="${1:-.local/venvs/airflow}"
python="${PYTHON:-python3.11}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.local/airflow}" AIRFLOW__CORE__LOAD_EXAMPLES=False
if ! { [[ -x "$venv/bin/airflow" ]] && [[ "$("$venv/bin/python" -c 'import airflow; print(airflow.__version__)' 2>/dev/null)" == "$version" ]]; }; then
  echo "==> installing apache-airflow $version into $venv"
  "$python" -m venv "$venv"
  "$(PYTHON="$python" scripts/uv.sh)" pip install -q --compile-bytecode --python "$venv/bin/python" "apache-airflow==$version" -c requirements/airflow-constraints.txt
fi
if [[ ! -f "$AIRFLOW_HOME/airflow.db" ]]; then
  mkdir -p "$AIRFLOW_HOME"
  "$venv/bin/airflow" db migrate >/dev/null
fi
