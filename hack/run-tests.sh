#!/usr/bin/env bash
# Runs every test. pytest's exit status 5 (no tests collected) is a failure here:
# a run that tested nothing must never look green.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$status"
