#!/usr/bin/env bash
# Reload under load: wrk drives an agent (inbound, one worker, CPU 1) in front of an nginx
# backend while the control plane changes the agent's inbound-http chain HZ times a
# second (a new Plugin script each time: a new PluginScript and ChainSet over real delta
# ADS, compiled and swapped in by the agent). Runs once with HZ=0 for the baseline.
#
#   bench/reload/run.sh                # 10 s at 0 and 10 changes/s
#   SECONDS_PER_RUN=20 HZS="0 10 50" bench/reload/run.sh
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HZS="${HZS:-0 10}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
OUT="${OUT:-$(mktemp -d /tmp/meshplug-reload.XXXXXX)}"
BIN="${BIN:-}"
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >&2
}
if [[ -z "$BIN" ]]; then
  (cd "$REPO" && bazel build -c opt //bench/reload:reload_agent //control_plane >&2)
  CP="$REPO/bazel-out/k8-opt/bin/control_plane/control_plane"
  AGENT="$REPO/bazel-out/k8-opt/bin/bench/reload/reload_agent"
else
  CP="$BIN/control_plane"
  AGENT="$BIN/reload_agent"
fi
mkdir -p "$OUT"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The backend: nginx, one worker, a small fixed body, CPU 0.
BACKEND="$(free_port)"
mkdir -p "$OUT/nginx"
cat > "$OUT/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process on; user root;
pid $OUT/nginx/nginx.pid; error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 10000000; default_type text/plain;
  client_body_temp_path $OUT/nginx/cb; proxy_temp_path $OUT/nginx/p; fastcgi_temp_path $OUT/nginx/f;
  uwsgi_temp_path $OUT/nginx/u; scgi_temp_path $OUT/nginx/s;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "reload benchmark backend\n"; } }
}
EOF
taskset -c 0 nginx -c "$OUT/nginx/nginx.conf" >"$OUT/nginx.log" 2>&1 &
PIDS+=($!)

echo "| changes/s | req/s | p50 ms | p99 ms | non-2xx | socket errors | chain swaps | snapshots rejected |"
echo "|---|---|---|---|---|---|---|---|"
for hz in $HZS; do
  port="$(free_port)"
  store="$OUT/store-$hz.db"; rm -f "$store"*
  taskset -c 1 "$CP" --listen="127.0.0.1:$port" --store="$store" --log_level=warn \
    --debounce_ms=5 --debounce_max_ms=20 >"$OUT/cp-$hz.log" 2>&1 &
  cp_pid=$!; PIDS+=($cp_pid)
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$AGENT" --server="127.0.0.1:$port" --app_port="$BACKEND" --apply_hz="$hz" \
    --seconds="$SECONDS_PER_RUN" --warmup_s=2 >"$OUT/agent-$hz.out" 2>"$OUT/agent-$hz.log" &
  agent_pid=$!; PIDS+=($agent_pid)
  inbound=""
  for _ in $(seq 200); do
    inbound="$(sed -n 's/.*inbound=\([0-9]*\).*/\1/p' "$OUT/agent-$hz.out" | head -1)"
    [[ -n "$inbound" ]] && break
    sleep 0.1
  done
  [[ -n "$inbound" ]] || { echo "agent did not start (see $OUT/agent-$hz.log)" >&2; exit 1; }
  # wrk starts within the agent's 2 s warm-up and ends with the changes.
  timeout $((SECONDS_PER_RUN + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_PER_RUN + 1))s" --latency \
    -H "Host: backend" "http://127.0.0.1:$inbound/" >"$OUT/wrk-$hz.txt" 2>&1 || true
  timeout 30 tail --pid="$agent_pid" -f /dev/null || true
  /usr/bin/python3 - "$OUT/wrk-$hz.txt" "$OUT/agent-$hz.out" <<'EOF'
import json, re, sys
w = open(sys.argv[1]).read()
a = json.loads([l for l in open(sys.argv[2]) if l.startswith("{")][-1])
def lat(p):
    m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", w)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", w)
print(f"| {a['apply_hz']:g} | {rps:,.0f} | {lat(50):.2f} | {lat(99):.2f} | {int(non2xx.group(1)) if non2xx else 0} | "
      f"{sum(map(int, sock.groups())) if sock else 0} | {a['swaps']} ({a['changes']} changes in {a['seconds']:.1f} s) | {a['snapshots_rejected']} |")
EOF
  kill -TERM "$cp_pid" 2>/dev/null || true
  wait "$cp_pid" 2>/dev/null || true
done
echo "logs: $OUT" >&2
