#!/usr/bin/env bash
# Run pytest from the test runtime. The integration and browser tiers start their own Slurm and hub
# (tests/conftest.py) under $AIFW_TEST_HOME on their own ports, and stop what they started.
set -uo pipefail
: "${AIFW_TEST_HOME:=/opt/aifw-test}"
cd "$(dirname "$0")/.."
export AIFW_TEST_HOME PYTHONDONTWRITEBYTECODE=1
"$AIFW_TEST_HOME/venv/bin/pytest" -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass." >&2
  exit 1
fi
exit $rc
