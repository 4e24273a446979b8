#!/usr/bin/env bash
# Benchmark-only tools from Debian's packages: wrk (the HTTP load generator of bench/serving_latency.py).
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then exit 0; fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install-bench-tools.sh: wrk is missing; install it with: sudo apt-get install -y wrk" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
