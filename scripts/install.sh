#!/usr/bin/env bash
# Installs everything the platform needs into ./.venv, from the pinned lock file, idempotently.
# Needs only: Python 3.11, Java 17, Maven, a C compiler (lime and hnswlib build from source).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
VENV=.venv
STAMP="$VENV/.installed"
want="$(cat requirements/lock.txt requirements/post-install.txt requirements/uv.txt pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "install.sh: '$1' is required ($2)" >&2; exit 1; }; }
need "$PYTHON" "Python 3.11"
need java "Java 17, to run Apache Kafka"
need mvn "Maven, to fetch Apache Kafka from Maven Central"
need cc "a C compiler, for lime and hnswlib"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
echo "==> creating $VENV from requirements/lock.txt (first time: about 2-3 minutes)"
uv="$(PYTHON="$PYTHON" scripts/uv.sh)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
# --compile-bytecode: as pip does. Python never writes bytecode where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines), so without it every process would compile every module it imports.
install=("$uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python")
"${install[@]}" -r requirements/lock.txt
# Packages whose own pins are obsolete (see requirements/post-install.txt): installed without deps.
grep -vE '^\s*(#|$)' requirements/post-install.txt | xargs -r "${install[@]}" --no-deps
"${install[@]}" --no-deps -e .
echo "$want" > "$STAMP"
echo "==> $VENV ready"
