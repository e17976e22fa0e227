#!/usr/bin/env bash
# The control plane's user-space instructions over one kind of change, counted by
# valgrind's callgrind: deterministic to about 1%, where the timed figures of run.sh move
# by ±20% between runs on this machine. Runs run.sh with the control plane under callgrind
# (instrumentation off), turns counting on once the change before CHANGE has finished its
# repeats and dumps once CHANGE's last repeat is done; prints the total and the dump (for
# callgrind_annotate).
#
#   BIN=DIR bench/xds_load/count.sh                   # 300 scoped agents, plugin_script
#   BIN=DIR AGENTS=300 CHANGE=new_service bench/xds_load/count.sh
#
# BIN holds control_plane and xds_load (-c opt builds). The count includes the gaps between
# repeats (idle streams: little) and every thread of the control plane.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:?BIN must hold control_plane and xds_load}"
AGENTS="${AGENTS:-300}"
CHANGE="${CHANGE:-plugin_script}"
REPEATS="${REPEATS:-3}"
OUT="${OUT:-$(mktemp -d /tmp/meshplug-xds-count.XXXXXX)}"
case "$CHANGE" in
  plugin_config) before="all connected" ;;
  plugin_script) before="plugin_config #$REPEATS:" ;;
  new_service) before="plugin_script #$REPEATS:" ;;
  workload_joins) before="new_service #$REPEATS:" ;;
  *) echo "CHANGE must be plugin_config, plugin_script, new_service or workload_joins" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || sudo apt-get install -y valgrind >&2

rm -rf "$OUT/bin" "$OUT/run" "$OUT"/callgrind.*
mkdir -p "$OUT/bin"
cp "$BIN/xds_load" "$OUT/bin/"
cat >"$OUT/bin/control_plane" <<EOW
#!/usr/bin/env bash
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$OUT/callgrind.%p.out "$BIN/control_plane" "\$@"
EOW
chmod +x "$OUT/bin/control_plane"

# Waits (up to 20 minutes) for a line of the load generator's log.
wait_log() {
  for _ in $(seq 12000); do
    grep -qF "$1" "$OUT"/run/load-*.log 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
(
  wait_log "$before" || exit 0
  pid="$(pgrep -f "valgrind.*$BIN/control_plane" | head -1)"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  wait_log "$CHANGE #$REPEATS:" || exit 0
  callgrind_control -d "$pid" >/dev/null 2>&1
) &
counter=$!
BIN="$OUT/bin" AGENTS="$AGENTS" SERVICES="${SERVICES:-2000}" REPEATS="$REPEATS" PROTOCOLS="${PROTOCOL:-delta}" \
  EGRESS_HOSTS="${EGRESS_HOSTS-./svc-0,./svc-1,./svc-2,./svc-3,./svc-4,./new-svc-1,./new-svc-2,./new-svc-3}" \
  TIMEOUT_S="${TIMEOUT_S:-1500}" OUT="$OUT/run" "$REPO/bench/xds_load/run.sh" >"$OUT/run.log" 2>&1 || true
wait "$counter" || true
grep -F "$CHANGE #" "$OUT"/run/load-*.log >&2 || true
dump="$(ls "$OUT"/callgrind.*.out.1 2>/dev/null | head -1)"
if [[ -z "$dump" ]]; then
  echo "no count: see $OUT/run.log and $OUT/run/" >&2
  exit 1
fi
total="$(sed -n 's/^summary: //p' "$dump")"
changes=$((AGENTS * REPEATS))
echo "$CHANGE, $AGENTS agents x $REPEATS repeats: $total instructions, $((total / changes)) per agent and change"
echo "dump: $dump" >&2
