#!/usr/bin/env bash
# Control-plane load: N simulated agents (real ADS streams, delta and state of the world)
# against a real control plane process with a fresh SQLite store. The control plane serves
# TLS only: it writes meshctl's credentials file (server, CA, admin token) to
# $OUT/config-N-PROTOCOL, with which the load generator applies the mesh and joins each
# agent (join token, then its own certificate and mTLS connection).
#
#   bench/xds_load/run.sh                      # N = 100, 1,000 and 10,000, both protocols
#   AGENTS="100 1000" bench/xds_load/run.sh     # the quick part
#   REPEATS=5 PROTOCOLS=delta bench/xds_load/run.sh
#   SERVICES=1000 EGRESS_HOSTS=./svc-0 AGENTS=1000 bench/xds_load/run.sh   # scoped agents
#   STORE=etcd REPLICAS=3 AGENTS=1000 bench/xds_load/run.sh   # replicas on etcd, agents spread over them
#   ENVOY_TYPES=1 AGENTS=1000 bench/xds_load/run.sh  # agents also subscribe to Envoy's four types
#   CP_FLAGS="--debounce_max_ms=3000" AGENTS=3000 bench/xds_load/run.sh  # extra control-plane flags
#   LOAD_FLAGS="--pause_s=3" bench/xds_load/run.sh   # extra load-generator flags
#
# With STORE=etcd, one etcd-server member (Debian's etcd-server) runs beside the control
# planes (all on CPU 1); changes are applied through the first replica and reach the
# agents of the others through etcd's watch.
# Prints one JSON line per run and a Markdown table. The control plane and the load
# generator are each pinned to one CPU (control plane: CPU 1, load: CPU 0). Every process
# is stopped on exit; each run is bounded by TIMEOUT_S.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
AGENTS="${AGENTS:-100 1000 10000}"
PROTOCOLS="${PROTOCOLS:-delta sotw}"
REPEATS="${REPEATS:-5}"
SERVICES="${SERVICES:-10}"
EGRESS_HOSTS="${EGRESS_HOSTS:-}"  # MeshConfig egressHosts, e.g. ./svc-0 (empty: every Service)
ENVOY_TYPES="${ENVOY_TYPES:-0}"  # 1: agents also subscribe to Envoy's Cluster, CLA, Listener, RouteConfiguration
TIMEOUT_S="${TIMEOUT_S:-1500}"
STORE="${STORE:-sqlite}"   # sqlite or etcd
REPLICAS="${REPLICAS:-1}"  # control planes (more than one needs STORE=etcd)
OUT="${OUT:-$(mktemp -d /tmp/meshplug-xds-load.XXXXXX)}"
BIN="${BIN:-}"

if [[ -z "$BIN" ]]; then
  (cd "$REPO" && bazel build -c opt //bench/xds_load:xds_load //control_plane >&2)
  BIN="$REPO/bazel-out/k8-opt/bin"
  CP="$BIN/control_plane/control_plane"
  LOAD="$BIN/bench/xds_load/xds_load"
else
  CP="$BIN/control_plane"
  LOAD="$BIN/xds_load"
fi
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

CP_PIDS=()
ETCD_PID=""
stop() {  # all at once: SIGTERM, up to 5 s, then SIGKILL
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$@" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$@" 2>/dev/null || true
}
cleanup() {
  stop ${CP_PIDS[@]+"${CP_PIDS[@]}"}  # before etcd: they say goodbye to it
  stop $ETCD_PID
  CP_PIDS=()
  ETCD_PID=""
  rm -rf "$OUT"/etcd-*/  # etcd's data (a 64 MB write-ahead log each)
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
if [[ "$STORE" != sqlite && "$STORE" != etcd ]]; then echo "STORE must be sqlite or etcd" >&2; exit 2; fi
if [[ "$STORE" == sqlite && "$REPLICAS" != 1 ]]; then echo "REPLICAS > 1 needs STORE=etcd" >&2; exit 2; fi
if [[ "$STORE" == etcd && ! -x /usr/bin/etcd ]]; then
  echo "installing Debian's etcd-server" >&2
  sudo apt-get install -y etcd-server >&2
fi

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

results="$OUT/results.jsonl"
: > "$results"
for n in $AGENTS; do
  for proto in $PROTOCOLS; do
    run="$n-$proto-$STORE-$REPLICAS"
    store="$OUT/store-$run.db"
    rm -f "$store" "$store"-*
    if [[ "$STORE" == etcd ]]; then
      client="$(free_port)"
      rm -rf "$OUT/etcd-$run"
      taskset -c 1 /usr/bin/etcd --data-dir "$OUT/etcd-$run" --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$(free_port)" >"$OUT/etcd-$run.log" 2>&1 &
      ETCD_PID=$!
      store="etcd://127.0.0.1:$client"
    fi
    servers=""
    for r in $(seq "$REPLICAS"); do
      port="$(free_port)"
      config="$OUT/config-$run-$r"
      rm -f "$config"
      mkdir -p "$OUT/home-$run-$r"
      # Agents PING the control plane every 30 s, each on its own schedule, so it never
      # PINGs them; the simulated agents do not, and would all be PINGed --keepalive_s after
      # each change, in the middle of the next one's measurement.
      MESHPLUG_HOME="$OUT/home-$run-$r" taskset -c 1 "$CP" --listen="127.0.0.1:$port" --store="$store" \
        --log_level=warn --client_config="$config" --keepalive_s=7200 ${CP_FLAGS:-} >"$OUT/cp-$run-$r.log" 2>&1 &
      CP_PIDS+=($!)
      # The credentials file is written once the server listens (atomically).
      for _ in $(seq 300); do
        [[ -s "$config" ]] && break
        sleep 0.1
      done
      if [[ ! -s "$config" ]]; then
        echo "control plane $r did not start (see $OUT/cp-$run-$r.log)" >&2
        exit 1
      fi
      servers="${servers:+$servers,}127.0.0.1:$port"
    done
    config="$OUT/config-$run-1"
    CP_PID="${CP_PIDS[0]}"
    pids="$(IFS=,; echo "${CP_PIDS[*]}")"
    echo "== $n agents, $proto, $REPLICAS control plane(s) on $STORE${CP_FLAGS:+, control plane flags: $CP_FLAGS}" >&2
    perf_pid=""
    if [[ -n "${PERF:-}" ]]; then  # profile the control plane for the whole run
      perf record -e cpu-clock -F 999 -g -o "$OUT/perf-cp-$run.data" -p "$CP_PID" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    if timeout "$TIMEOUT_S" taskset -c 0 "$LOAD" --config="$config" --server="$servers" --agents="$n" \
        --protocol="$proto" --repeats="$REPEATS" --services="$SERVICES" --cp_pid="$pids" \
        --egress_hosts="$EGRESS_HOSTS" \
        --envoy_types="$([[ $ENVOY_TYPES == 1 ]] && echo true || echo false)" \
        --timeout_s=$((TIMEOUT_S / 2)) ${LOAD_FLAGS:-} >>"$results" 2>"$OUT/load-$run.log"; then
      tail -n 1 "$results"
    else
      echo "run failed or timed out (see $OUT/load-$run.log)" >&2
      tail -n 5 "$OUT/load-$run.log" >&2 || true
    fi
    if [[ -n "$perf_pid" ]]; then
      kill -INT "$perf_pid" 2>/dev/null || true
      wait "$perf_pid" 2>/dev/null || true
      perf report -i "$OUT/perf-cp-$run.data" --no-children --stdio --sort dso,symbol -g none \
        --percent-limit 1 >"$OUT/perf-cp-$run.txt" 2>/dev/null || true
      echo "profile: $OUT/perf-cp-$run.txt" >&2
    fi
    cleanup
  done
done

/usr/bin/python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
# "all started": when the load generator had started its last agent (each builds its own
# TLS context on the generator's one core); when it is close to "all connected", the
# generator, not the control plane, set the pace.
print("| agents | protocol | control planes | all connected (s) | all started (s) | connect p50 / p99 (ms) | settled (s) | CP CPU for connect (s) | CP RSS (MB) | RSS per agent (KB) | PluginConfig → 10%: p50 / p99 ms (agents updated) | Plugin script → all: p50 / p99 ms | new Service → all: p50 / p99 ms | a Workload joins svc-0 → all: p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    def c(k):
        x = r[k]
        return f"{x['p50_ms']:.0f} / {x['p99_ms']:.0f}"
    upd = r["plugin_config"]["agents_updated"]
    print(f"| {r['agents']:,} | {r['protocol']} | {r.get('replicas', 1)} | {r['all_connected_ms']/1000:.2f} | {r['open_ms']/1000:.2f} | {r['connect_p50_ms']:.0f} / {r['connect_p99_ms']:.0f} | "
          f"{r['settled_ms']/1000:.2f} | {r['cp_cpu_connect_s']:.1f} | {r['cp_rss_connected_kb']/1024:.0f} | {r['cp_rss_per_agent_kb']:.0f} | "
          f"{c('plugin_config')} ({int(min(upd))}–{int(max(upd))} of {r['plugin_config']['expected_agents']}) | {c('plugin_script')} | {c('new_service')} | {c('workload_joins')} |")
print()
print("| agents | protocol | CP CPU per change, s: PluginConfig / script / Service / Workload joins (median) | bytes the agents received per change (protobuf size), MB: PluginConfig / script / Service / Workload joins (median) | bytes received to connect (GB) |")
print("|---|---|---|---|---|")
changes = ("plugin_config", "plugin_script", "new_service", "workload_joins")
for r in rows:
    med = lambda v: sorted(v)[len(v)//2]
    cpu = " / ".join(f"{med(r[k]['cp_cpu_s']):.2f}" for k in changes)
    mb = " / ".join(f"{med(r[k]['bytes'])/1e6:.1f}" for k in changes)
    print(f"| {r['agents']:,} | {r['protocol']} | {cpu} | {mb} | {r['connect_bytes']/1e9:.2f} |")
print()
print("| agents | protocol | control planes | apply p50 / p99 ms: PluginConfig / script / Service / Workload joins |")
print("|---|---|---|---|")
for r in rows:
    a = lambda k: f"{r[k]['apply_p50_ms']:.0f} / {r[k]['apply_p99_ms']:.0f}"
    print(f"| {r['agents']:,} | {r['protocol']} | {r.get('replicas', 1)} | {' · '.join(a(k) for k in changes)} |")
EOF
echo "results: $results" >&2
