#!/usr/bin/env bash
# Runs every test tier. The integration and end-to-end tiers start the real Kafka broker through
# infra/ (on test ports, in .local/test, so a running dev stack is left alone) and stop it after.
#
# With no arguments, two lanes run at once: unit + integration (sharing the session's test broker,
# then the chaos and CLI modules) and the rest of end-to-end (whole stacks on ports and a state folder of their
# own: MLOPS_TEST_KAFKA_PORT + 3000, <state>/e2e). Most end-to-end time is spent waiting for stacks, trainings and pollers, so on two
# cores the lanes overlap instead of queueing. The first lane runs at nice MLOPS_TEST_LANE_NICE (10) in a
# scheduling group of its own, so the second lane's stacks get the share `mlops up` gives them.
# Arguments run one pytest with them, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
export MLOPS_TEST_STATE_DIR="${MLOPS_TEST_STATE_DIR:-$PWD/.local/test}"
export MLFLOW_DISABLE_TELEMETRY=true TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=30)

# The static checks. mypy (about 50 s of one core on a fresh clone) runs beside the others (about 17 s),
# which would leave the second core idle; its verdict is awaited before any test starts.
.venv/bin/python -m mypy &
mypy_check=$!
.venv/bin/ruff check . || { kill "$mypy_check" 2>/dev/null; exit 1; }
for check in "contracts.export --check docs/events" "infra.asyncapi --check docs/asyncapi.json" \
  "infra.openapi --check docs/openapi"; do
  # shellcheck disable=SC2086  # the module and its arguments, split on purpose
  .venv/bin/python -m $check || { kill "$mypy_check" 2>/dev/null; exit 1; }
done
wait "$mypy_check" || { echo "==> mypy found errors (above)"; exit 1; }

if [[ $# -gt 0 ]]; then
  exec "${pytest[@]}" "$@"
fi

# Kafka's jars and their class archive (infra/kafka_classes.py) once, before the lanes' first brokers.
.venv/bin/python -c "from infra.kafka_local import ensure_jars, ensure_class_archive; from infra.settings import InfraSettings as S
ensure_class_archive(ensure_jars(S().jars_dir))"
base="${MLOPS_TEST_KAFKA_PORT:-19092}"
lane_log="$MLOPS_TEST_STATE_DIR/e2e-lane.log"
mkdir -p "$MLOPS_TEST_STATE_DIR/e2e"
started=$SECONDS
# The first lane is otherwise the shorter one, so it also takes the chaos module (about 4 min; its
# ports, MLOPS_TEST_KAFKA_PORT + 500 and - 4000, are clear of both lanes' others) and, once its
# broker is down, the CLI module (about 3 min) on ports of its own, base - 8000 and around (every
# end-to-end module places its ports relative to MLOPS_TEST_KAFKA_PORT), far from the second lane's
# (base + 3000 and around) and below Linux's ephemeral range. (So MLOPS_TEST_KAFKA_PORT must be 10024
# or more: the CLI module's services start at base - 9000.) The Airflow module (about 3 min) went
# back to the second lane when the first began to run at a lower priority, which made it the longer.
tail_modules=(tests/e2e/test_cli.py)
MLOPS_TEST_KAFKA_PORT=$((base + 3000)) MLOPS_TEST_STATE_DIR="$MLOPS_TEST_STATE_DIR/e2e" \
  "${pytest[@]}" tests/e2e --ignore=tests/e2e/test_chaos.py "${tail_modules[@]/#/--ignore=}" \
  >"$lane_log" 2>&1 &
e2e=$!
interrupted=0
trap 'interrupted=1; kill "$e2e" 2>/dev/null || true' INT TERM
set +e
# This lane runs at the stream services' CPU priority, in a scheduling group of its own (tests/lane.py):
# at nice 0 it starved the end-to-end stacks' services, which run at 10 and 15 as `mlops up` sets them.
MLOPS_TEST_KAFKA_PORT=$base .venv/bin/python -m tests.lane "${MLOPS_TEST_LANE_NICE:-10}" \
  "${pytest[@]}" tests/unit tests/integration tests/e2e/test_chaos.py
first=$?
echo "==> unit + integration + chaos: exit $first after $((SECONDS - started)) s"
tail_exit=130
if [[ $interrupted == 0 ]]; then  # a Ctrl-C in the first lane stops the whole run, not only that lane
  mkdir -p "$MLOPS_TEST_STATE_DIR/e2e-tail"
  MLOPS_TEST_KAFKA_PORT=$((base - 8000)) MLOPS_TEST_STATE_DIR="$MLOPS_TEST_STATE_DIR/e2e-tail" \
    "${pytest[@]}" "${tail_modules[@]}"
  tail_exit=$?
fi
first=$((first != 0 || tail_exit != 0))
echo "==> CLI end to end: exit $tail_exit after $((SECONDS - started)) s; waiting for the end-to-end lane"
wait "$e2e"
second=$?
set -e
echo "==> end-to-end lane (exit $second, $((SECONDS - started)) s in all):"
cat "$lane_log"
exit $((first != 0 || second != 0))
