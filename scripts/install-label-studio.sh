#!/usr/bin/env bash
# Label Studio in a venv of its own (its Django stack clashes with the project's lock), for
# `mlops up --with-label-studio` and tests/integration/test_label_studio.py (docs/annotation.md).
# Pinned, with the versions pip resolved once kept in requirements/label-studio-constraints.txt.
# Its frontend ships inside the wheel: nothing is fetched when the server runs.
# Usage: scripts/install-label-studio.sh [VENV_DIR] (default .local/venvs/label-studio, git-ignored).
# Idempotent and quick when already installed. Never touches the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.23.2
venv="${1:-.local/venvs/label-studio}"
python="${PYTHON:-python3.11}"
installed() {
  [[ -x "$venv/bin/label-studio" ]] &&
    [[ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("label-studio"))' 2>/dev/null)" == "$version" ]]
}
if ! installed; then
  echo "==> installing label-studio $version into $venv"
  "$python" -m venv "$venv"
  "$(PYTHON="$python" scripts/uv.sh)" pip install -q --compile-bytecode --python "$venv/bin/python" "label-studio==$version" -c requirements/label-studio-constraints.txt
fi
