#!/usr/bin/env bash
# Runs every test tier. The integration and end-to-end tiers start the real Kafka broker through
# infra/ (on test ports, in .local/test, so a running dev stack is left alone) and stop it after.
set -euo pipefail
cd "$(dirname "$0")/.."
export MLOPS_TEST_STATE_DIR="${MLOPS_TEST_STATE_DIR:-$PWD/.local/test}"
export MLFLOW_DISABLE_TELEMETRY=true TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""

.venv/bin/ruff check .
.venv/bin/python -m mypy
.venv/bin/python -m contracts.export --check docs/events
.venv/bin/python -m infra.asyncapi --check docs/asyncapi.json
.venv/bin/python -m infra.openapi --check docs/openapi
.venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=30 "$@"
