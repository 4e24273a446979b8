#!/usr/bin/env bash
# Prints the path of the pinned uv (requirements/uv.txt), installing it first into .local/venvs/uv
# (git-ignored) with the interpreter's own pip when it is missing or another version.
# Usage: uv="$(scripts/uv.sh)"; "$uv" pip install --python VENV/bin/python ...
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3.11}"
venv=.local/venvs/uv
want="$(grep -E '^uv==' requirements/uv.txt)"
if [[ "$("$venv/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "${want#uv==}" ]]; then
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --no-input "$want" >&2
fi
echo "$PWD/$venv/bin/uv"
