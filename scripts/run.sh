#!/usr/bin/env bash
# Set up (scripts/setup.sh, idempotent), then run with the interpreter it chose:
#   bash scripts/run.sh test [PYTEST ARGS]     the test suite (python -m pytest -q ...)
#   bash scripts/run.sh demo [ARGS]            the main job (compilerdream demo ...)
#   bash scripts/run.sh COMMAND [ARGS]         any other compilerdream command
#   bash scripts/run.sh python [ARGS]          that Python itself
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  echo "usage: bash scripts/run.sh test|demo|python|COMMAND [ARGS...]" >&2
  exit 2
fi
if ! PY="$(bash scripts/setup.sh --print-python)" || [ -z "$PY" ]; then
  echo "[run] set-up failed (see above)" >&2
  exit 1
fi
command="$1"
shift
case "$command" in
  test) echo "[run] $PY -m pytest -q $*" >&2; exec "$PY" -m pytest -q "$@" ;;
  python) exec "$PY" "$@" ;;
  *) echo "[run] compilerdream $command $*" >&2; exec "$PY" -m compilerdream "$command" "$@" ;;
esac
