#!/usr/bin/env bash
# The README's "bring it up" command: installs what is missing, builds, and starts the
# control plane with its embedded store in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
exec bazel run //control_plane -- "$@"
