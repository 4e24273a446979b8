#!/usr/bin/env bash
# Test-only system tools from Debian's packages: kcat (an outside Kafka client the tests use to prove
# that any producer, not only ours, can talk to the broker).
set -euo pipefail
if command -v kcat >/dev/null 2>&1; then exit 0; fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install-test-tools.sh: kcat is missing; install it with: sudo apt-get install -y kcat" >&2
  exit 1
fi
echo "==> installing kcat from Debian's packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
