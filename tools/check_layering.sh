#!/usr/bin/env bash
# Shows that Bazel visibility enforces the layering of docs/architecture.md: each probe
# adds a dependency the layering forbids to a package and expects analysis to refuse it.
# The BUILD files are restored after each probe, also on Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."

probes=(
  "agent/proxy //control_plane/translate"        # the data plane never links the control plane
  "agent/xds //control_plane/xds:cache"
  "control_plane/store //agent/routing"           # nor the reverse
  "plugins/builtin //agent/chains"                # plugins sit below the agent
  "plugins/lua //plugins/builtin"                 # Lua plugins do not reach into built-ins
  "cli //control_plane/validation"                # meshctl does not link Lua or the control plane
  "common //resources:kinds"                      # common is the bottom layer
  "resources //plugins/lua:script_check"
)

failed=0
for probe in "${probes[@]}"; do
  read -r pkg dep <<<"$probe"
  build="$pkg/BUILD.bazel"
  cp "$build" "$build.layering-bak"
  trap 'mv -f "$build.layering-bak" "$build"; exit 130' INT TERM
  printf '\ncc_library(name = "layering_probe", deps = ["%s"])\n' "$dep" >>"$build"
  out=$(bazel build "//$pkg:layering_probe" 2>&1)
  if grep -q "is not visible from target" <<<"$out"; then
    echo "refused as it should be: //$pkg -> $dep"
  else
    echo "NOT REFUSED: //$pkg -> $dep"
    failed=1
  fi
  mv -f "$build.layering-bak" "$build"
  trap - INT TERM
done
exit $failed
