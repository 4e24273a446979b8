#!/usr/bin/env bash
# Test-only system tools from Debian's packages: kcat (an outside Kafka client the tests use to prove
# that any producer, not only ours, can talk to the broker) and postgresql (the server binaries the
# audit store's contract tests start a throwaway cluster with; the tests never use a system cluster)
# and prometheus (the server `mlops up --with-prometheus` runs; the e2e test checks that it scrapes a
# service; the package's own system service is never started) and chromium (headless, for the
# screenshots of scripts/screenshots.py that the demo's end-to-end test takes) and redis-server (the Feast
# online store of `mlops up --profile cluster`, infra/redis_local.py; the tests start their own on a free
# port, and the package's system service is never started either).
# Idempotent and quiet: installs only what is missing.
# Also Apache Airflow in a venv of its own (scripts/install-airflow.sh), for tests/e2e/test_airflow_dag.py,
# and Label Studio in its own (scripts/install-label-studio.sh), for tests/integration/test_label_studio.py.
# `--cluster`: only the servers of `mlops up --profile cluster` (postgresql, redis-server), for
# `make demo PROFILE=cluster`.
set -euo pipefail
missing=()
if [[ "${1:-}" != --cluster ]]; then
  "$(dirname "$0")/install-airflow.sh"
  "$(dirname "$0")/install-label-studio.sh"
  command -v kcat >/dev/null 2>&1 || missing+=(kcat)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [[ ${#missing[@]} == 0 ]]; then exit 0; fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install-test-tools.sh: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "==> installing ${missing[*]} from Debian's packages"
apt-get update -qq
# policy-rc.d: a package must not start (or leave running) a system service of its own.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && trap 'rm -f "$policy"' EXIT; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
