#!/usr/bin/env bash
# The README's "bring it up" command: installs what is missing, builds, and runs the
# reference demo — the control plane with its embedded store, an external auth service,
# a real httpbin behind its agent and curl's agent — printing each step of docs/spec.md
# §11. As root (with iptables) each workload runs in its own network namespace with its
# traffic intercepted, and curl runs exactly as the article writes it; otherwise, or with
# MESHPLUG_DEMO_PROXY=1, everything runs on 127.0.0.1 and curl uses its agent as a proxy
# (the demo says which, and why). The mesh keeps running until Ctrl-C, then everything
# (namespaces included) is removed.
# `tools/up.sh --control-plane-only` starts just the control plane in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ "${1:-}" = "--control-plane-only" ]; then
  shift
  exec bazel run //control_plane -- "$@"
fi
exec bazel run //integration:demo
