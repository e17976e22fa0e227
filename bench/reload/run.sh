#!/usr/bin/env bash
# Reload under load: wrk drives the real agent (//agent: inbound, one worker, CPU 1) in front
# of an nginx backend while the real control plane (//control_plane, CPU 1) changes the
# agent's inbound-http chain HZ times a second: each change is a new script for the Plugin
# "reload-probe" applied with meshctl, so a new PluginScript and ChainSet reach the agent
# over its own delta-ADS client, which compiles them and swaps a new chain set in. Runs once
# with HZ=0 for the baseline. Swaps, applied updates and NACKs come from the agent's /stats.
# The control plane serves TLS only: meshctl uses the credentials file it writes
# ($OUT/config), and the agent joins with a bootstrap from `meshctl workload token`.
#
#   bench/reload/run.sh                # 10 s at 0 and 10 changes/s
#   SECONDS_PER_RUN=20 HZS="0 10 50" bench/reload/run.sh
#   BIN=DIR bench/reload/run.sh        # prebuilt agent, control_plane and meshctl in DIR
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HZS="${HZS:-0 10}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
OUT="${OUT:-$(mktemp -d /tmp/meshplug-reload.XXXXXX)}"
BIN="${BIN:-}"
NS=reload
for n in $HZS $SECONDS_PER_RUN $CONNECTIONS; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "HZS, SECONDS_PER_RUN and CONNECTIONS take whole numbers, got '$n'" >&2; exit 2; }
done
PY=/usr/bin/python3
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >&2
}
if [[ -z "$BIN" ]]; then
  (cd "$REPO" && bazel build -c opt //agent //control_plane //cli:meshctl >&2)
  BIN_CP="$REPO/bazel-out/k8-opt/bin/control_plane/control_plane"
  BIN_AGENT="$REPO/bazel-out/k8-opt/bin/agent/agent"
  BIN_MESHCTL="$REPO/bazel-out/k8-opt/bin/cli/meshctl"
else
  BIN_CP="$BIN/control_plane"
  BIN_AGENT="$BIN/agent"
  BIN_MESHCTL="$BIN/meshctl"
fi
mkdir -p "$OUT"

PIDS=()
# SIGTERM, up to 5 s to exit (the agent drains), then SIGKILL.
stop() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    timeout 5 tail --pid="$pid" -s 0.05 -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() {
  if ((${#PIDS[@]})); then stop "${PIDS[@]}"; fi
  PIDS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
die() { echo "$*" >&2; exit 1; }
# wait_for SECONDS CMD...: run CMD until it succeeds, at most SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}
http_ok() { curl -fsS -o /dev/null --max-time 2 "$@" 2>/dev/null; }
# One counter or gauge from the agent's /stats, summed over its series.
metric() {
  curl -fsS --max-time 5 "http://127.0.0.1:$admin/stats" | $PY -c '
import re, sys
name, want = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
total = 0
for line in sys.stdin:
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line.strip())
    if m and m.group(1) == name and want in (m.group(2) or ""):
        total += float(m.group(3))
print(int(total))' "$@"
}
stats() { echo "$(metric meshplug_agent_chain_swaps) $(metric meshplug_agent_xds_updates_applied_total 'source="xds"') $(metric meshplug_agent_xds_nacks_total)"; }

# The change: a new script for the Plugin, mounted on the agent's inbound-http chain.
plugin_yaml() {
  cat <<EOF
apiVersion: plugin.flomesh.io/v1alpha1
kind: Plugin
metadata: {name: reload-probe}
spec: {priority: 115, script: "function on_request(req, ctx) req.headers:set('x-reload', 'rev-$1') end"}
EOF
}

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
wait_for 10 http_ok "http://127.0.0.1:$BACKEND/" || die "nginx did not start (see $OUT/nginx)"

echo "| changes/s | req/s | p50 ms | p99 ms | non-2xx | socket errors | chain swaps | xDS updates applied | NACKs |"
echo "|---|---|---|---|---|---|---|---|---|"
for hz in $HZS; do
  # The control plane, on a fresh store.
  port="$(free_port)"
  cp_addr="127.0.0.1:$port"
  store="$OUT/store-$hz.db"; rm -f "$store"*
  # The previous run's credentials are for another store's CA and tokens.
  rm -f "$OUT/config"
  taskset -c 1 "$BIN_CP" --listen="$cp_addr" --store="$store" --log_level=warn \
    --debounce_ms=5 --debounce_max_ms=20 --client_config="$OUT/config" >"$OUT/cp-$hz.log" 2>&1 &
  cp_pid=$!; PIDS+=($cp_pid)
  meshctl() { "$BIN_MESHCTL" --config "$OUT/config" --server "$cp_addr" "$@"; }
  wait_for 20 meshctl version >/dev/null 2>&1 || die "control plane did not start (see $OUT/cp-$hz.log)"

  # The mesh: the namespace and plugins switched on first, then the service, the chain and
  # the plugin's first script.
  meshctl apply -f - >"$OUT/apply-$hz.log" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec: {featureFlags: {enablePluginPolicy: true}}
EOF
  { cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: $NS}
spec: {ports: [{port: 80, targetPort: $BACKEND}], selector: {app: backend}}
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata: {name: reload-chain, namespace: $NS}
spec:
  chains: [{name: inbound-http, plugins: [reload-probe]}]
  selectors: {podSelector: {matchLabels: {app: backend}}}
---
EOF
    plugin_yaml 0; } | meshctl apply -f - >>"$OUT/apply-$hz.log"

  # The agent: the backend's sidecar, one worker, any free ports. It joins with a bootstrap
  # (node id, namespace, control plane address and CA, a join token); a saved identity
  # from the previous run is the old CA's, so it starts without one.
  rm -f "$OUT/agent-$hz.snapshot.json" "$OUT/agent-$hz.admin-token" "$OUT/agent.identity.pem"
  meshctl workload token "$NS/backend-1" --service-account backend --bootstrap >"$OUT/agent.bootstrap.yaml" ||
    die "no join token for the agent (see $OUT/cp-$hz.log)"
  taskset -c 1 "$BIN_AGENT" --bootstrap="$OUT/agent.bootstrap.yaml" --identity_file="$OUT/agent.identity.pem" \
    --labels=app=backend --service_account=backend --address=127.0.0.1 --bind_address=127.0.0.1 \
    --workers=1 --outbound_port=0 --inbound_port=0 --admin_port=0 \
    --snapshot_cache="$OUT/agent-$hz.snapshot.json" --admin_token_file="$OUT/agent-$hz.admin-token" \
    >"$OUT/agent-$hz.out" 2>"$OUT/agent-$hz.log" &
  agent_pid=$!; PIDS+=($agent_pid)
  listening() { grep -q '^agent: listening' "$OUT/agent-$hz.out"; }
  wait_for 20 listening || die "agent did not start (see $OUT/agent-$hz.log)"
  line="$(grep -m1 '^agent: listening' "$OUT/agent-$hz.out")"
  inbound="$(sed -n 's/.* inbound=\([0-9]*\).*/\1/p' <<<"$line")"
  admin="$(sed -n 's/.* admin=\([0-9]*\).*/\1/p' <<<"$line")"
  wait_for 20 http_ok "http://127.0.0.1:$admin/ready" || die "agent never ready (see $OUT/agent-$hz.log)"
  wait_for 20 http_ok -H "Host: backend" "http://127.0.0.1:$inbound/" ||
    die "agent does not serve the backend (see $OUT/agent-$hz.log)"
  # Settled: no update in flight (e.g. its own endpoints after it registered), at most 5 s.
  settle_deadline=$((SECONDS + 5)); prev="$(stats)"
  while ((SECONDS < settle_deadline)); do
    sleep 0.5; now="$(stats)"; [[ "$now" == "$prev" ]] && break; prev="$now"
  done
  read -r swaps0 applied0 nacks0 <<<"$(stats)"

  # The load and the changes, for the same SECONDS_PER_RUN.
  timeout $((SECONDS_PER_RUN + 30)) taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
    -H "Host: backend" "http://127.0.0.1:$inbound/" >"$OUT/wrk-$hz.txt" 2>&1 &
  wrk_pid=$!; PIDS+=($wrk_pid)
  # The driver (CPU 0, which has room while the agent is the bottleneck): meshctl apply of
  # a new script every 1/HZ s, at most HZ * SECONDS_PER_RUN changes, each within 10 s.
  timeout $((SECONDS_PER_RUN + 30)) taskset -c 0 \
    $PY - "$BIN_MESHCTL" "$OUT/config" "$cp_addr" "$hz" "$SECONDS_PER_RUN" \
    >"$OUT/driver-$hz.json" 2>"$OUT/driver-$hz.log" <<'EOF' || true
import json, subprocess, sys, time
meshctl, config, server, hz, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
def plugin(rev):
    return ("apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: reload-probe}\n"
            "spec: {priority: 115, script: \"function on_request(req, ctx) req.headers:set('x-reload', "
            f"'rev-{rev}') end\"}}\n")
start = time.monotonic()
changes = failed = 0
if hz > 0:
    for i in range(int(hz * seconds)):
        at = start + i / hz
        if at >= start + seconds:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        changes += 1
        try:
            r = subprocess.run([meshctl, "--config", config, "--server", server, "apply", "-f", "-"],
                               input=plugin(changes), text=True, capture_output=True, timeout=10)
            ok = r.returncode == 0
            if not ok:
                print(f"change {changes}: {r.stderr.strip()}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            ok = False
            print(f"change {changes}: meshctl timed out", file=sys.stderr)
        failed += not ok
time.sleep(max(0.0, start + seconds - time.monotonic()))  # the run lasts SECONDS_PER_RUN at 0/s too
print(json.dumps({"changes": changes, "failed": failed, "seconds": time.monotonic() - start}))
EOF
  [[ -s "$OUT/driver-$hz.json" ]] || die "the change driver failed (see $OUT/driver-$hz.log)"
  wait "$wrk_pid" || true
  # The last change has landed: the agent runs its script.
  driver_changes="$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["changes"])' "$OUT/driver-$hz.json")"
  if ((driver_changes > 0)); then
    # /config_dump needs the agent's admin token.
    landed() {
      curl -fsS --max-time 5 -H "Authorization: Bearer $(cat "$OUT/agent-$hz.admin-token")" \
        "http://127.0.0.1:$admin/config_dump" | grep -q "rev-${driver_changes}[^0-9]"
    }
    wait_for 10 landed || echo "warning: change $driver_changes never reached the agent (hz=$hz)" >&2
  fi
  read -r swaps1 applied1 nacks1 <<<"$(stats)"
  curl -fsS --max-time 5 "http://127.0.0.1:$admin/stats" >"$OUT/agent-$hz.stats" || true

  $PY - "$OUT/wrk-$hz.txt" "$OUT/driver-$hz.json" "$hz" $((swaps1 - swaps0)) $((applied1 - applied0)) \
    $((nacks1 - nacks0)) <<'EOF'
import json, re, sys
w = open(sys.argv[1]).read()
d = json.load(open(sys.argv[2]))
hz, swaps, applied, nacks = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def lat(p):
    m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", w)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
rps = re.search(r"Requests/sec:\s+([\d.]+)", w)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", w)
changes = f"{d['changes']} changes in {d['seconds']:.1f} s" + (f", {d['failed']} failed" if d["failed"] else "")
print(f"| {hz:g} | {float(rps.group(1)) if rps else float('nan'):,.0f} | {lat(50):.2f} | {lat(99):.2f} | "
      f"{int(non2xx.group(1)) if non2xx else 0} | {sum(map(int, sock.groups())) if sock else 0} | "
      f"{swaps} ({changes}) | {applied} | {nacks} |")
EOF
  stop "$agent_pid" "$cp_pid"
  PIDS=("${PIDS[0]}")  # nginx stays for the next run
done
echo "logs: $OUT" >&2
