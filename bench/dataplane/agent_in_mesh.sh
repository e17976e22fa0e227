#!/usr/bin/env bash
# An agent's memory and threads in a mesh, where it follows the control plane: a real
# control plane (fresh SQLite store, TLS), one namespace, and for each agent binary given
# an agent that joins with its own token, gets its certificate and its configuration over
# mTLS. Once every agent has applied its configuration and SETTLE_S more seconds have
# passed, prints each one's RSS, peak RSS and thread count (docs/benchmarks.md §4.2).
#
#   bench/dataplane/agent_in_mesh.sh                       # this checkout's agent (-c opt)
#   bench/dataplane/agent_in_mesh.sh OLD_AGENT NEW_AGENT   # binaries side by side
#
# Everything runs in a scratch directory as HOME and is stopped on exit.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SETTLE_S="${SETTLE_S:-5}"
(cd "$REPO" && bazel build -c opt //control_plane //cli:meshctl //agent >&2)
BIN="$(cd "$REPO" && bazel info -c opt bazel-bin 2>/dev/null)"
AGENTS=("$@")
[[ ${#AGENTS[@]} -gt 0 ]] || AGENTS=("$BIN/agent/agent")

WORK="$(mktemp -d /tmp/meshplug-agent-in-mesh.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export HOME="$WORK"
cd "$WORK"

port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN/control_plane/control_plane" --store "$WORK/store.db" --listen "127.0.0.1:$port" > cp.log 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -f "$WORK/.config/meshplug/config" ]] && break; sleep 0.1; done
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n' > ns.yaml
"$BIN/cli/meshctl" apply -f ns.yaml > /dev/null

for i in "${!AGENTS[@]}"; do
  "$BIN/cli/meshctl" workload token "demo/agent-$i" --bootstrap > "agent-$i.yaml"
  "${AGENTS[$i]}" --bootstrap "$WORK/agent-$i.yaml" --labels app=agent-$i --address 127.0.0.1 --workers=1 \
    --bind_address=127.0.0.1 --outbound_port=0 --inbound_port=0 --admin_port=0 > "agent-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in "${!AGENTS[@]}"; do
  for _ in $(seq 1 300); do grep -q '"configuration applied"' "agent-$i.log" && break; sleep 0.1; done
  grep -q '"configuration applied"' "agent-$i.log" || { echo "agent $i applied no configuration: $WORK/agent-$i.log" >&2; exit 1; }
done
sleep "$SETTLE_S"

echo "| agent | RSS, MB | peak RSS, MB | threads |"
echo "|---|---|---|---|"
for i in "${!AGENTS[@]}"; do
  pid="${PIDS[$((i + 1))]}"
  memory="$(awk '/VmRSS/ {rss = $2} /VmHWM/ {hwm = $2} END {printf "%.1f | %.1f", rss / 1024, hwm / 1024}' "/proc/$pid/status")"
  echo "| ${AGENTS[$i]} | $memory | $(ls "/proc/$pid/task" | wc -l) |"
done
