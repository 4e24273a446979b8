#!/bin/sh
# Entry point of deploy/Dockerfile's image: the first argument chooses what runs.
#   ingest | features | training | serving | drift | explain | audit | annotation   one service (python -m services.NAME)
#   topics                                                              create/grow the platform's topics
# Anything else is run as given (e.g. `mlflow server ...`, used by deploy/compose.yaml).
set -eu
case "${1:-}" in
  ingest|features|training|serving|drift|explain|audit|annotation)
    service="$1"; shift
    exec python -m "services.$service" "$@" ;;
  topics)
    shift
    exec mlops topics "$@" ;;
  "")
    echo "usage: IMAGE {ingest|features|training|serving|drift|explain|audit|topics} | COMMAND..." >&2
    exit 64 ;;
  *)
    exec "$@" ;;
esac
