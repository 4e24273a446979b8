#!/usr/bin/env bash
# The `airflow` command of scripts/install-airflow.sh's venv, with this repository's settings: AIRFLOW_HOME
# under .local/airflow (SQLite metadata) and the DAGs of infra/airflow/dags, no example DAGs.
# e.g. scripts/airflow.sh dags test mlops_nightly 2026-01-01
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AIRFLOW_VENV:-$root/.local/venvs/airflow}"
if [[ ! -x "$venv/bin/airflow" ]]; then
  echo "airflow.sh: no Airflow at $venv; install it with: scripts/install-airflow.sh" >&2
  exit 1
fi
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.local/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/infra/airflow/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
exec "$venv/bin/airflow" "$@"
