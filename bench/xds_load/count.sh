#!/usr/bin/env bash
# The control plane's user-space instructions over one kind of change, counted by
# valgrind's callgrind: within about ±3% between runs, where the timed figures of run.sh
# move by ±20% on this machine. Runs run.sh once with the control plane under callgrind
# (instrumentation off) and the load generator pausing PAUSE_S seconds before and after
# each kind of change (--pause_s); counting runs from the pause before CHANGE to the pause
# after it, so it holds CHANGE's repeats and the idle pauses (little: idle streams).
# Prints the total, per agent that the change reaches, and the dump (for callgrind_annotate).
#
#   BIN=DIR bench/xds_load/count.sh                   # 300 scoped agents, plugin_script, delta
#   BIN=DIR AGENTS=300 CHANGE=new_service PROTOCOL=sotw bench/xds_load/count.sh
#
# BIN holds control_plane and xds_load (-c opt builds). AGENTS and PROTOCOL take one
# value each. Counting covers every thread of the control plane.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${BIN:?BIN must hold control_plane and xds_load}"
AGENTS="${AGENTS:-300}"
CHANGE="${CHANGE:-plugin_script}"
PROTOCOL="${PROTOCOL:-delta}"
REPEATS="${REPEATS:-3}"
PAUSE_S="${PAUSE_S:-3}"
OUT="${OUT:-$(mktemp -d /tmp/meshplug-xds-count.XXXXXX)}"
case "$CHANGE" in
  plugin_config | plugin_script | new_service | workload_joins) ;;
  *) echo "CHANGE must be plugin_config, plugin_script, new_service or workload_joins" >&2; exit 2 ;;
esac
if ! [[ "$AGENTS" =~ ^[0-9]+$ && "$REPEATS" =~ ^[0-9]+$ ]]; then
  echo "AGENTS and REPEATS must be one number each" >&2
  exit 2
fi
if [[ "$PROTOCOL" != delta && "$PROTOCOL" != sotw ]]; then echo "PROTOCOL must be delta or sotw" >&2; exit 2; fi
command -v valgrind >/dev/null || sudo apt-get install -y valgrind >&2

rm -rf "$OUT/bin" "$OUT/run" "$OUT"/callgrind.* "$OUT/counter.log"
mkdir -p "$OUT/bin"
cp "$BIN/xds_load" "$OUT/bin/"
printf '#!/usr/bin/env bash\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%q %q "$@"\n' \
  "$OUT/callgrind.%p.out" "$BIN/control_plane" >"$OUT/bin/control_plane"
chmod +x "$OUT/bin/control_plane"

# Waits (up to 30 minutes) for a line of the load generator's log.
wait_log() {
  for _ in $(seq 18000); do
    grep -qF "$1" "$OUT"/run/load-*.log 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
counter_log="$OUT/counter.log"
(
  wait_log "== $CHANGE: starting" || exit 0
  pid="$(pgrep -f -n -- "--callgrind-out-file=$OUT/callgrind" || true)"
  if [[ -z "$pid" ]]; then echo "no control plane under callgrind" >>"$counter_log"; exit 0; fi
  callgrind_control -i on "$pid" >>"$counter_log" 2>&1
  callgrind_control -z "$pid" >>"$counter_log" 2>&1
  wait_log "== $CHANGE: done" || exit 0
  callgrind_control -d "$pid" >>"$counter_log" 2>&1
  callgrind_control -i off "$pid" >>"$counter_log" 2>&1  # the changes after it run at full speed
) &
counter=$!
trap 'kill "$counter" 2>/dev/null || true' EXIT
BIN="$OUT/bin" AGENTS="$AGENTS" SERVICES="${SERVICES:-2000}" REPEATS="$REPEATS" PROTOCOLS="$PROTOCOL" \
  EGRESS_HOSTS="${EGRESS_HOSTS-./svc-0,./svc-1,./svc-2,./svc-3,./svc-4,./new-svc-1,./new-svc-2,./new-svc-3}" \
  LOAD_FLAGS="--pause_s=$PAUSE_S" TIMEOUT_S="${TIMEOUT_S:-1500}" OUT="$OUT/run" "$REPO/bench/xds_load/run.sh" \
  >"$OUT/run.log" 2>&1 || true
kill "$counter" 2>/dev/null || true  # the run is over: nothing is left to count
wait "$counter" 2>/dev/null || true
grep -F "  $CHANGE #" "$OUT"/run/load-*.log >&2 || true
dump="$(compgen -G "$OUT/callgrind.*.out.1" | head -1 || true)"
if [[ -z "$dump" ]]; then
  echo "no count: see $OUT/run.log, $counter_log and $OUT/run/" >&2
  exit 1
fi
total="$(sed -n 's/^summary: //p' "$dump")"
reached="$(grep -F "  $CHANGE #1:" "$OUT"/run/load-*.log | sed -n 's/.*(expected \([0-9]*\)).*/\1/p')"
[[ "${reached:-0}" -gt 0 ]] || reached="$AGENTS"  # a change that reached nobody: per agent of the run
echo "$CHANGE, $PROTOCOL, $AGENTS agents x $REPEATS repeats: $total instructions;" \
  "$((total / (reached * REPEATS))) per agent reached ($reached) and change"
echo "dump: $dump" >&2
