#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs every test,
# and ends with "N passed, N failed" counted over test cases (not Bazel targets).
set -uo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

# Tests always run (not taken from the disk cache): CI must see them pass now.
bazel build //... && bazel test //... --cache_test_results=no "$@"
status=$?

/usr/bin/python3 tools/count_tests.py "$(bazel info bazel-testlogs 2>/dev/null)" \
  $(bazel query 'tests(//...)' 2>/dev/null) || status=1
exit $status
