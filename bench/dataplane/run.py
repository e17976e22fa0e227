#!/usr/bin/python3
"""Data-plane benchmark: meshplug's agent side by side with HAProxy and nginx.

    /usr/bin/python3 bench/dataplane/run.py            # build, run everything, print tables
    /usr/bin/python3 bench/dataplane/run.py --quick    # 3 s per point, fewer rates

Standard library only. Installs wrk, nginx, haproxy, nghttp2-client (h2load) and
gnuplot-nox (valgrind for --instructions, strace for --syscalls) with apt-get when missing, builds the agents with `bazel build -c opt`, starts
an nginx backend on 127.0.0.1 that returns a small fixed body, then for each path

  a  direct           client -> backend
  b  haproxy          client -> HAProxy -> backend
  c  nginx            client -> nginx (reverse proxy) -> backend
  d  agent            client -> agent inbound -> backend
  e  agent x2         client -> agent A outbound -> agent B inbound -> backend (a mesh hop)
  f  haproxy x2       client -> HAProxy -> HAProxy -> backend
  g  agent x2+tokens  as e, with token-injector on A's outbound-http and token-verifier on
                      B's inbound-http calling an auth service (nginx) for every request
  h  nginx x2+auth    as f with nginx: the first sets x-iam-token, the second checks it
                      with auth_request against the same auth service
  i  agent x2 mTLS    as e, the hop in mutual TLS 1.3 (workload certificates, SPIFFE ID
                      checked by A, client certificate required by B in strict mode)
  j  haproxy x2 TLS   as f, the hop in mutual TLS 1.3 (the same P-256 certificates; B
                      requires and verifies A's)
  k  agent x2 intercepted
                      as e, but the client knows nothing of the agents: it calls the
                      service's virtual address and meshplug-intercept's iptables rules
                      redirect it to A (needs root; all of k — backend, agents, client —
                      runs in a network namespace of its own, removed afterwards)
  l  agent, HTTP/2    as d, HTTP/2 on both sides: the client speaks h2c (prior knowledge)
                      and the agent's cluster is of protocol http2, to the backend's h2c port
  m  haproxy, HTTP/2  as b, HTTP/2 on both sides (`bind ... proto h2`, `server ... proto h2`)

measures saturation throughput with wrk (keep-alive, fixed connection count, 1 thread) —
for l and m with h2load (the same connection count, --streams concurrent streams on each) —
and latency at fixed request rates from --rate_connections clients, each one h2load
connection at its share of the rate (--rps; HTTP/1.1 with --h1, HTTP/2 for l and m), started
one after another so that requests arrive spread out, as from independent clients (one
h2load with -c16 sends its connections' requests together: a burst of 16 every 16 ms at
1,000 req/s); per-request logs -> p50/p99. With --awake a spinner on each CPU that yields
to any other task keeps the CPUs from idling during those runs, so that the latency is not
the VM's wake-up of a halted vCPU. With --repeats N the paths run N times in turn and the report
adds each ratio's median and range over the runs. Every
proxy gets one worker/thread and is pinned to CPU 1 (`taskset`); the load generators and
the backend (and the auth service) are pinned to CPU 0. CPU per 1,000 requests comes from
/proc/<pid>/stat (utime+stime of the proxy's process tree) over the saturation run; peak
RSS is VmHWM summed over the proxy's process tree.

With --instructions N it times nothing: it starts the proxies of the chosen paths (agents
and HAProxy) under valgrind's callgrind, sends N requests one after another on one
kept-alive connection after max(100, N/10) to warm up, and prints the user-space instructions each
proxy executed per request. The count is deterministic (two runs agree within 0.1%), so
it compares two builds where requests/s on a shared machine varies by tens of percent;
the kernel's work (system calls) is not in it. --cache_sim adds the L1 cache misses per
request that callgrind simulates (this VM has no hardware counters): what makes one
instruction dearer than another. With --syscalls N it does the same under
strace attached after the warm-up, and prints each proxy's system calls per request by name:
the kernel side of the same comparison.

Everything binds 127.0.0.1 on free ports; every process is stopped on exit (also on
SIGINT/SIGTERM); every load run has a duration and a hard timeout. Path k's namespace
(mp-bench-<pid>) and its rules exist only while k runs; a namespace left by a killed run
is removed by the next.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "2f1acc6c3a606b082e5eef5e54414ffb"
BODY = "meshplug benchmark backend: a small fixed body of sixty-four bytes.\n"[:63] + "\n"
LOADGEN_CPU = "0"
PROXY_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

PROCS = []  # every process we started, stopped in reverse order at exit
TMP = None
# Path k: the network namespace its processes run in (None: the machine's own).
NETNS = None
NETNS_PREFIX = "mp-bench-"
APP_DIR = None  # path k: where the client (not root) writes h2load's log
VIRTUAL_IP = "10.96.0.10"
APP_UID = "1000"  # the client's uid in the namespace: not the agents' (0), so intercepted
# --instructions: what agents and HAProxy are started under (valgrind's callgrind), else nothing.
PROXY_WRAPPER = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- setup

def ensure_tools(counting):
    need = {"wrk": "wrk", "nginx": "nginx", "haproxy": "haproxy", "h2load": "nghttp2-client",
            "gnuplot": "gnuplot-nox", "taskset": "util-linux", "setpriv": "util-linux", "ip": "iproute2",
            "iptables-restore": "iptables"}
    if counting == "instructions":
        need.update({"valgrind": "valgrind", "callgrind_control": "valgrind"})
    elif counting == "syscalls":
        need["strace"] = "strace"
    elif counting == "wakeups":  # wakeups.py
        need["perf"] = "linux-perf"
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if not missing:
        return
    log("installing", " ".join(missing))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    # policy-rc.d (if present) keeps the packaged nginx/haproxy services from starting.
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True, env=env,
                   timeout=1200)


def build(skip):
    bin_dir = os.path.join(REPO, "bazel-bin")
    agent = os.path.join(bin_dir, "agent/agent")
    if not skip:
        log("building //agent and meshplug-intercept (-c opt)")
        subprocess.run(["bazel", "build", "-c", "opt", "//agent", "//agent/intercept:meshplug-intercept"],
                       cwd=REPO, check=True, timeout=3600)
        bin_dir = subprocess.run(["bazel", "info", "-c", "opt", "bazel-bin"], cwd=REPO, check=True,
                                 capture_output=True, text=True, timeout=600).stdout.strip()
        agent = os.path.join(bin_dir, "agent/agent")
    return agent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_netns(argv, as_app=False):
    """argv run in path k's namespace (as the app's uid with as_app), or as it is."""
    if not NETNS:
        return argv
    app = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups"] if as_app else []
    return ["ip", "netns", "exec", NETNS] + app + argv


def port_open(port):
    if NETNS:
        return subprocess.run(in_netns(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"]),
                              capture_output=True, timeout=10).returncode == 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def start(name, argv, cpu, **kw):
    out = open(os.path.join(TMP, name + ".log"), "w")
    # taskset first: the pinning is inherited through `ip netns exec`, which execs in place.
    p = subprocess.Popen(["taskset", "-c", cpu] + in_netns(argv), stdout=kw.pop("stdout", out), stderr=out,
                         stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    p.bench_name = name
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)  # its own session: nginx master and workers
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
    if p in PROCS:
        PROCS.remove(p)


def stop_all(*_):
    for p in reversed(list(PROCS)):
        try:
            stop(p)
        except Exception as e:  # keep stopping the others
            log("stop failed:", e)


def on_signal(sig, _frame):
    stop_all()
    sys.exit(128 + sig)


# ------------------------------------------------------------------ servers and proxies

def nginx_conf(name, servers, workers=1):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    temp = "".join(f"  {k}_temp_path {d}/{k};\n" for k in
                   ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = f"""
worker_processes {workers};
daemon off;
master_process on;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  default_type text/plain;
{temp}{servers}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


# The nginx backend: its process, and its HTTP/1.1, auth service and HTTP/2 (h2c, prior
# knowledge) ports.
Backend = collections.namedtuple("Backend", "proc port auth h2")


def start_backend():
    """nginx as the backend, started on 127.0.0.1 (in path k's namespace while k runs)."""
    port, auth, h2 = free_port(), free_port(), free_port()
    servers = f"""
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ return 200 "{BODY.strip()}\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{h2} http2;
    location / {{ return 200 "{BODY.strip()}\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{auth};
    location / {{
      if ($http_x_iam_token = "{TOKEN}") {{ return 200 "ok\\n"; }}
      return 401 "bad token\\n";
    }}
  }}"""
    p = start("backend", ["nginx", "-c", nginx_conf("backend", servers)], LOADGEN_CPU)
    wait_port(port, p)
    wait_port(auth, p)
    wait_port(h2, p)
    return Backend(p, port, auth, h2)


def start_nginx_proxy(name, upstream, extra_location="", extra_server=""):
    port = free_port()
    servers = f"""
  upstream up {{ server 127.0.0.1:{upstream}; keepalive 128; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port};
{extra_server}
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
{extra_location}
    }}
  }}"""
    p = start(name, ["nginx", "-c", nginx_conf(name, servers)], PROXY_CPU)
    wait_port(port, p)
    return [p], port


def make_certificates():
    """A CA and two ECDSA P-256 workload certificates with SPIFFE URI SANs (openssl CLI),
    for paths i and j; returns {name: (cert, key)} and the CA file."""
    d = os.path.join(TMP, "pki")
    os.makedirs(d, exist_ok=True)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=bench root",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    out = {}
    for name in ("a", "b"):
        key, csr, cert = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "pem"))
        ext = os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/{name},DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n")
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN=bench-{name}")
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-out", cert, "-extfile", ext)
        with open(os.path.join(d, f"{name}.both.pem"), "w") as f:  # HAProxy wants both in one file
            f.write(open(cert).read() + open(key).read())
        out[name] = (cert, key)
    return out, ca


def start_haproxy(name, upstream, tls_in=None, tls_out=None, h2=False):
    """tls_in: (cert+key file, CA) to require mTLS clients; tls_out: the same to use mTLS
    upstream; h2: HTTP/2 (cleartext, prior knowledge) on both sides."""
    proto = " proto h2" if h2 else ""
    port = free_port()
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    conf = f"""
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}{proto}{f" ssl crt {tls_in[0]} ca-file {tls_in[1]} verify required ssl-min-ver TLSv1.3" if tls_in else ""}
  default_backend be
backend be
  server s1 127.0.0.1:{upstream}{proto}{f" ssl crt {tls_out[0]} ca-file {tls_out[1]} verify required ssl-min-ver TLSv1.3" if tls_out else ""}
"""
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    p = start(name, PROXY_WRAPPER + ["haproxy", "-db", "-f", path], PROXY_CPU)
    wait_port(port, p, timeout=60 if PROXY_WRAPPER else 10)
    return [p], port


def builtin(chain):
    return [{"name": n, "priority": p, "builtin": True} for n, p in chain]


INBOUND_HTTP = [("http-routing", 170), ("metrics", 160), ("tracing", 150), ("logging", 140),
                ("throttle-service", 130), ("throttle-route", 120),
                ("http-load-balancing", 110), ("http-default", 100)]
OUTBOUND_HTTP = [("http-routing", 160), ("metrics", 150), ("tracing", 140), ("logging", 130),
                 ("circuit-breaker", 120), ("http-load-balancing", 110), ("http-default", 100)]


def read_script(name):
    with open(os.path.join(REPO, "plugins/examples", name + ".lua")) as f:
        return f.read()


def netns_run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")


def delete_netns(name):
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def running(pid):
    """Whether process `pid` runs: a zombie (killed, not reaped) does not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def remove_stale_netns():
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0]
        pid = name[len(NETNS_PREFIX):]
        if name.startswith(NETNS_PREFIX) and pid.isdigit() and not running(pid):
            delete_netns(name)


def create_netns():
    """Path k's namespace: loopback, and a veth pair with a default route so that the
    virtual address is routable (nothing answers on the link: the rules redirect first)."""
    global NETNS, APP_DIR
    remove_stale_netns()
    name = NETNS_PREFIX + str(os.getpid())
    delete_netns(name)
    APP_DIR = tempfile.mkdtemp(prefix="meshplug-bench-app-")
    os.chown(APP_DIR, int(APP_UID), int(APP_UID))
    netns_run(["ip", "netns", "add", name])
    NETNS = name
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "mb0", "type", "veth", "peer", "name", "mb1"],
                ["ip", "addr", "add", "10.202.0.2/24", "dev", "mb0"], ["ip", "link", "set", "mb0", "up"],
                ["ip", "link", "set", "mb1", "up"], ["ip", "route", "add", "default", "dev", "mb0"]):
        netns_run(in_netns(cmd))


def snapshot(version, inbound, upstream_port, plugin=None, plugin_config=None, protocol="PROTOCOL_HTTP"):
    """A snapshot with the default chains (docs/spec.md §5) and one service "backend.bench" that
    takes every Host ("*"): inbound to 127.0.0.1:upstream_port (the app), or outbound to
    the peer agent's inbound listener at 127.0.0.1:upstream_port."""
    cluster = "backend.bench|80" + ("|local" if inbound else "")
    inb, outb = list(INBOUND_HTTP), list(OUTBOUND_HTTP)
    scripts = []
    chains = {"name": "chains",
              "inboundTcp": builtin([("tcp-routing", 120), ("tcp-load-balancing", 110),
                                     ("tcp-default", 100)]),
              "outboundTcp": builtin([("tcp-routing", 120), ("tcp-load-balancing", 110),
                                      ("tcp-default", 100)])}
    http = builtin(inb if inbound else outb)
    service = {"name": "backend.bench", "hosts": ["*"], "inbound": inbound,
               "ports": [{"port": 80, "targetPort": upstream_port, "protocol": protocol}],
               "routes": [{"name": "default", "match": {"prefix": "/"},
                           "clusters": [{"cluster": cluster, "weight": 100}]}]}
    if plugin:
        script_name = plugin + "@bench"
        scripts.append({"name": script_name, "plugin": plugin, "source": read_script(plugin),
                        "version": "1"})
        entry = {"name": plugin, "priority": 115, "script": script_name}
        idx = next(i for i, m in enumerate(http) if m["priority"] < 115)
        http.insert(idx, entry)
        service["pluginConfigs"] = {plugin: plugin_config}
    chains["inboundHttp" if inbound else "outboundHttp"] = http
    chains["outboundHttp" if inbound else "inboundHttp"] = builtin(outb if inbound else inb)
    return {"version": version, "chains": chains, "scripts": scripts, "services": [service],
            "clusters": [{"name": cluster, "protocol": protocol}],
            "endpoints": [{"cluster": cluster, "endpoints": [
                {"address": "127.0.0.1", "port": upstream_port, "weight": 1}]}],
            "settings": {"workload": {"name": "bench-" + ("in" if inbound else "out"),
                                      "namespace": "bench", "serviceAccount": "bench",
                                      "labels": {"app": "bench"}}}}


def start_agent(agent_bin, name, snap, tls=None):
    path = os.path.join(TMP, name + ".json")
    with open(path, "w") as f:
        json.dump(snap, f, indent=1)
    stdout = open(os.path.join(TMP, name + ".out"), "w+")
    p = start(name, PROXY_WRAPPER + [agent_bin, "--workers=1", "--bind_address=127.0.0.1", "--outbound_port=0",
                     "--inbound_port=0", "--admin_port=0", f"--snapshot_file={path}"]
              + ([f"--tls_cert_file={tls[0]}", f"--tls_key_file={tls[1]}", f"--tls_bundle_file={tls[2]}"]
                 if tls else []),
              PROXY_CPU, stdout=stdout)
    deadline = time.time() + (60 if PROXY_WRAPPER else 10)  # valgrind starts slowly
    while time.time() < deadline:
        stdout.seek(0)
        m = re.search(r"outbound=(\d+) inbound=(\d+) admin=(\d+)", stdout.read())
        if m:
            return p, int(m.group(1)), int(m.group(2))
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited: see {TMP}/{name}.log")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not report its ports")


def setup_path(key, agent_bin, backend):
    """Starts the proxies of one path; returns (procs, entry port, TLS server). The TLS
    server, for the mTLS paths, is (port, client cert, client key, CA) of the proxy that
    terminates mTLS (procs[0])."""
    if key == "a":
        return [], backend.port, None
    if key == "b":
        return start_haproxy("haproxy1", backend.port) + (None,)
    if key == "c":
        return start_nginx_proxy("nginx1", backend.port) + (None,)
    if key == "d":
        p, _, inb = start_agent(agent_bin, "agent-b", snapshot("1", True, backend.port))
        return [p], inb, None
    if key == "l":
        p, _, inb = start_agent(agent_bin, "agent-b", snapshot("1", True, backend.h2, protocol="PROTOCOL_HTTP2"))
        return [p], inb, None
    if key == "m":
        return start_haproxy("haproxy1", backend.h2, h2=True) + (None,)
    if key in ("e", "g"):
        tokens = key == "g"
        pb, _, inb = start_agent(agent_bin, "agent-b", snapshot(
            "1", True, backend.port, "token-verifier" if tokens else None,
            {"Verifier": f"127.0.0.1:{backend.auth}", "Paths": ["/*"], "Timeout": 1}))
        pa, outb, _ = start_agent(agent_bin, "agent-a", snapshot(
            "1", False, inb, "token-injector" if tokens else None, {"AccessToken": TOKEN}))
        return [pb, pa], outb, None
    if key == "f":
        p2, port2 = start_haproxy("haproxy2", backend.port)
        p1, port1 = start_haproxy("haproxy1", port2)
        return p2 + p1, port1, None
    if key == "i":
        certs, ca = make_certificates()
        inbound = snapshot("1", True, backend.port)
        inbound["settings"]["mtlsMode"] = "MTLS_STRICT"
        pb, _, inb = start_agent(agent_bin, "agent-b", inbound, certs["b"] + (ca,))
        outbound = snapshot("1", False, inb)
        outbound["endpoints"][0]["endpoints"][0]["identity"] = "spiffe://cluster.local/ns/bench/sa/b"
        pa, outb, _ = start_agent(agent_bin, "agent-a", outbound, certs["a"] + (ca,))
        return [pb, pa], outb, (inb,) + certs["a"] + (ca,)
    if key == "k":
        intercept = os.path.join(os.path.dirname(agent_bin), "intercept/meshplug-intercept")
        if not os.path.exists(intercept):
            raise RuntimeError(f"{intercept} is not built (bazel build -c opt //agent/intercept:meshplug-intercept)")
        pb, _, inb = start_agent(agent_bin, "agent-b", snapshot("1", True, backend.port))
        outbound = snapshot("1", False, inb)
        outbound["services"][0]["virtualIp"] = VIRTUAL_IP
        pa, outb, _ = start_agent(agent_bin, "agent-a", outbound)
        netns_run(in_netns([intercept, "install",
                            "--proxy_uid=0", f"--outbound_port={outb}", f"--inbound_port={inb}"]))
        return [pb, pa], 80, None
    if key == "j":
        certs, ca = make_certificates()
        both = lambda n: os.path.join(TMP, "pki", f"{n}.both.pem")
        p2, port2 = start_haproxy("haproxy2", backend.port, tls_in=(both("b"), ca))
        p1, port1 = start_haproxy("haproxy1", port2, tls_out=(both("a"), ca))
        return p2 + p1, port1, (port2,) + certs["a"] + (ca,)
    raise ValueError(key)


def setup_nginx_auth(backend):
    port2, port1 = free_port(), free_port()
    common = """
      proxy_http_version 1.1;
      proxy_set_header Connection "";"""
    verifier = f"""
  upstream up {{ server 127.0.0.1:{backend.port}; keepalive 128; keepalive_requests 10000000; }}
  upstream auth {{ server 127.0.0.1:{backend.auth}; keepalive 128; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port2};
    location = /__auth {{
      internal;
      proxy_pass http://auth$request_uri;{common}
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
    location / {{
      auth_request /__auth;
      proxy_pass http://up;{common}
    }}
  }}"""
    injector = f"""
  upstream up {{ server 127.0.0.1:{port2}; keepalive 128; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port1};
    location / {{
      proxy_pass http://up;{common}
      proxy_set_header x-iam-token "{TOKEN}";
    }}
  }}"""
    p2 = start("nginx2", ["nginx", "-c", nginx_conf("nginx2", verifier)], PROXY_CPU)
    wait_port(port2, p2)
    p1 = start("nginx1", ["nginx", "-c", nginx_conf("nginx1", injector)], PROXY_CPU)
    wait_port(port1, p1)
    return [p2, p1], port1


# ------------------------------------------------------------------------ measurement

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_times(pids):
    """The processes' user and system CPU seconds."""
    user = system = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime (field 14)
            system += int(fields[12])  # stime (field 15)
        except OSError:
            pass
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids):
    return sum(cpu_times(pids))


def cpu_busy(cpu):
    """Busy seconds of one CPU (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # minus idle and iowait
    return 0.0


def hwm_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmHWM:\s+(\d+)", f.read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def target(port):
    """The URL the client calls: path k's service by its virtual address (intercepted)."""
    return f"http://{VIRTUAL_IP}:{port}/" if NETNS else f"http://127.0.0.1:{port}/"


def run_wrk(port, seconds, conns):
    cmd = ["taskset", "-c", LOADGEN_CPU] + in_netns(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
                                                     "--latency", "--timeout", "5s", target(port)], as_app=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = r.stdout
    rps, requests = re.search(r"Requests/sec:\s+([\d.]+)", out), re.search(r"(\d+) requests in", out)
    if not rps or not requests:
        raise RuntimeError(f"wrk gave no figures: {(out + r.stderr)[-300:]}")
    res = {"rps": float(rps.group(1)), "requests": int(requests.group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        res[f"p{pct}"] = to_ms(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def run_handshakes(server, proc, seconds):
    """New mTLS handshakes per second at the proxy that terminates them (openssl s_time,
    a new session each time, client certificate), and that proxy's CPU per handshake."""
    port, cert, key, ca = server
    # s_time counts a TLS 1.3 handshake once the client sends Finished, before the server
    # has judged the client certificate: first check that a request with it is served.
    check = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                            "-CAfile", ca, "-verify_return_error", "-quiet"],
                           input="GET / HTTP/1.0\r\nHost: bench\r\n\r\n", capture_output=True, text=True,
                           timeout=30)
    if "HTTP/1." not in check.stdout:
        raise RuntimeError(f"an mTLS request with the client certificate was not served: {check.stderr[-300:]}")
    pids = tree(proc.pid)
    c0 = cpu_seconds(pids)
    out = subprocess.run(["taskset", "-c", LOADGEN_CPU, "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
                          "-new", "-cert", cert, "-key", key, "-CAfile", ca, "-time", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    c1 = cpu_seconds(pids)
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if not m or int(m.group(2)) == 0:
        raise RuntimeError(f"openssl s_time said: {out[-500:]}")
    n = int(m.group(1))
    return {"per_second": n / int(m.group(2)), "count": n,
            "server_cpu_ms_per_1k": (c1 - c0) * 1000.0 / max(1, n) * 1000.0}


def h2load_log(logfs):
    """Per-request statuses and latencies (ms, sorted) from h2load's --log-file(s)."""
    lat, ok, unrecorded, bad = [], 0, 0, {}
    for logf in logfs:
        with open(logf) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                if parts[1].startswith("2"):
                    ok += 1
                elif parts[1] == "0":
                    # Answered, with a status h2load did not record: it records statuses
                    # only after its warm-up, and this response's header came before the
                    # warm-up ended and its end after (seen for HAProxy too, at saturation
                    # and at fixed rates). Neither answered well nor failed, as far as we know.
                    unrecorded += 1
                else:
                    bad[parts[1]] = bad.get(parts[1], 0) + 1
                lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: None)
    # Failed requests by status (h2load logs -1 for a stream that was reset or cut off).
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "ok": ok, "unrecorded": unrecorded,
            "errors": sum(bad.values()), "error_statuses": bad}


def by_status(figures):
    """The failed requests' statuses, as " (status: count, ...)", when h2load logged any, and
    the answers whose status it did not record."""
    statuses = figures.get("error_statuses")
    out = f" ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})" if statuses else ""
    if figures.get("unrecorded"):
        out += f", {figures['unrecorded']} answered with no status recorded (during h2load's warm-up)"
    return out


def run_h2load(port, seconds, rate, conns, h2=False):
    """Latency at a fixed rate from `conns` clients of one connection each, started one
    after another: each starting takes about a millisecond or more, so their requests
    arrive at unrelated moments of each period, as independent clients' do. (One h2load
    with -c conns --rps starts every connection's request at the same instant: 1,000 req/s
    arrived as 62 bursts of 16, and the p50 measured a request's place in its burst, the
    p99 mostly bursts that met a stall of the machine.)"""
    per_conn = max(1, round(rate / conns))
    clients = []
    try:
        for i in range(conns):
            logf = os.path.join(APP_DIR if NETNS else TMP, f"h2load-{i}.log")
            if os.path.exists(logf):
                os.remove(logf)
            cmd = ["taskset", "-c", LOADGEN_CPU] + in_netns(["h2load"] + ([] if h2 else ["--h1"]) + [
                "-c", "1", "-t", "1", "--rps", str(per_conn), "-D", str(seconds), "--warm-up-time", "1",
                f"--log-file={logf}", target(port)], as_app=True)
            clients.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                            logf))
        achieved = 0.0
        for proc, _ in clients:
            out = proc.communicate(timeout=seconds + 30)[0]
            m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
            # A client without figures fails the path: a rate short of one client's share
            # would be reported as offered.
            if not m:
                raise RuntimeError(f"an h2load client gave no figures: {out[-300:]}")
            achieved += float(m.group(1))
    finally:
        for proc, _ in clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"offered": per_conn * conns, "achieved": round(achieved, 1),
            **h2load_log([logf for _, logf in clients])}


def run_h2load_saturation(port, seconds, conns, streams):
    """As run_wrk, for HTTP/2 clients: h2load with `conns` connections of `streams`
    concurrent streams each, as fast as they go."""
    logf = os.path.join(TMP, "h2load-saturation.log")
    if os.path.exists(logf):
        os.remove(logf)
    cmd = ["taskset", "-c", LOADGEN_CPU, "h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
           "-D", str(seconds), "--warm-up-time", "1", f"--log-file={logf}", target(port)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", r.stdout)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     r.stdout)
    if not rps or not done:
        raise RuntimeError(f"h2load gave no figures: {(r.stdout + r.stderr)[-300:]}")
    log_figures = h2load_log([logf])
    return {"rps": float(rps.group(1)), "requests": int(done.group(1)), "p50": log_figures["p50"],
            "p99": log_figures["p99"], "non2xx": log_figures["errors"],
            "error_statuses": log_figures["error_statuses"], "unrecorded": log_figures["unrecorded"],
            "socket_errors": int(done.group(3)) + int(done.group(4))}


# Paths whose clients speak HTTP/2.
HTTP2_PATHS = "lm"


PATHS = {
    "a": ("direct (no proxy)", 0),
    "b": ("HAProxy", 1),
    "c": ("nginx", 1),
    "d": ("meshplug agent (inbound)", 1),
    "e": ("meshplug agent x2 (outbound->inbound)", 2),
    "f": ("HAProxy x2", 2),
    "g": ("meshplug x2 + token plugins + auth", 2),
    "h": ("nginx x2 + header + auth_request", 2),
    "i": ("meshplug agent x2, mTLS hop", 2),
    "j": ("HAProxy x2, mTLS hop", 2),
    "k": ("meshplug agent x2, intercepted", 2),
    "l": ("meshplug agent (inbound), HTTP/2 both sides", 1),
    "m": ("HAProxy, HTTP/2 both sides", 1),
}


def measure(key, agent_bin, backend, args):
    global NETNS, APP_DIR
    if key == "k":
        # Its own backend in its namespace, on the same CPU as the machine's.
        try:
            create_netns()
            backend = start_backend()
            try:
                return measure_path(key, agent_bin, backend, args)
            finally:
                stop(backend.proc)
        finally:
            if NETNS:
                delete_netns(NETNS)
            if APP_DIR:
                shutil.rmtree(APP_DIR, ignore_errors=True)
            NETNS, APP_DIR = None, None
    return measure_path(key, agent_bin, backend, args)


def start_awake(cpu):
    """A spinner that keeps `cpu` from idling and that any runnable task preempts at once,
    as idle=poll does on a bare machine: an idle vCPU is halted, and the hypervisor takes up
    to milliseconds to run it again when a request wakes it."""
    p = start(f"awake-{cpu}", ["chrt", "--idle", "0", "sh", "-c", "while :; do :; done"], cpu)
    # SCHED_IDLE yields only within its task group, and start() gives each process a
    # session and so (with autogroups) a group of its own, which would share the CPU with
    # the proxies' groups as an equal: the group's weight is lowered too.
    if os.path.exists("/proc/sys/kernel/sched_autogroup_enabled"):
        try:
            with open(f"/proc/{p.pid}/autogroup", "w") as f:
                f.write("19")
        except OSError as e:
            stop(p)
            raise RuntimeError(f"--awake: could not lower the spinner's autogroup: {e}")
    if p.poll() is not None:
        raise RuntimeError(f"--awake: the spinner exited with {p.returncode} (see {TMP}/awake-{cpu}.log)")
    return p


def measure_path(key, agent_bin, backend, args):
    if key == "h":
        procs, port = setup_nginx_auth(backend)
        tls_server = None
    else:
        procs, port, tls_server = setup_path(key, agent_bin, backend)
    h2 = key in HTTP2_PATHS

    def saturate(seconds):
        if h2:
            return run_h2load_saturation(port, seconds, args.connections, args.streams)
        return run_wrk(port, seconds, args.connections)

    try:
        # A check request, then warm-up.
        saturate(1)
        pids = [q for p in procs for q in tree(p.pid)] or tree(PROCS[0].pid)
        measured_pids = [q for p in procs for q in tree(p.pid)]
        (u0, s0), b0 = cpu_times(pids), cpu_busy(PROXY_CPU)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        sat = saturate(args.seconds)
        (u1, s1), b1 = cpu_times(pids), cpu_busy(PROXY_CPU)
        c0, c1 = u0 + s0, u1 + s1
        # Busy time of the proxies' CPU not accounted to the proxies: other work on the
        # machine (and the kernel's softirq work for the proxies), as a share of the run.
        sat["other_on_proxy_cpu"] = max(0.0, (b1 - b0) - (c1 - c0 if measured_pids else 0)) / args.seconds
        sat["loadavg"] = float(load)
        def per_1k(seconds):
            return seconds * 1000.0 / max(1, sat["requests"]) * 1000.0
        sat["cpu_ms_per_1k"] = per_1k(c1 - c0)
        # The kernel's share (system calls, and the loopback TCP work done in the sender's
        # context) against the process's own.
        sat["user_ms_per_1k"] = per_1k(u1 - u0)
        sat["sys_ms_per_1k"] = per_1k(s1 - s0)
        sat["cpu_util"] = (c1 - c0) / args.seconds
        sat["cpu_of"] = "proxies" if measured_pids else "backend"
        rates = []
        for rate in args.rates:
            if rate > sat["rps"] * 0.95:
                rates.append({"offered": rate, "skipped": "over saturation"})
                continue
            # Both CPUs: a proxy's request to the backend wakes CPU 0 as a client's wakes CPU 1.
            awake = []
            try:
                for cpu in args.awake_cpus:
                    awake.append(start_awake(cpu))
                c0 = cpu_seconds(pids)
                r = run_h2load(port, args.rate_seconds, rate, args.rate_connections, h2)
                c1 = cpu_seconds(pids)
            finally:
                for p in awake:
                    stop(p)
            done = r["ok"] + r["unrecorded"] + r["errors"]
            r["cpu_ms_per_1k"] = (c1 - c0) * 1000.0 / max(1, done) * 1000.0 if done else None
            rates.append(r)
        sat["rss_mb"] = hwm_kb(pids) / 1024.0
        if tls_server:
            sat["handshakes"] = run_handshakes(tls_server, procs[0], args.seconds)
        perf = None  # a separate run: perf's sampling is not in the figures above
        if key in args.profile and measured_pids:
            data = os.path.join(TMP, f"perf-{key}.data")
            perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g",
                                     "-o", data, "-p", ",".join(map(str, measured_pids))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            PROCS.append(perf)
            saturate(args.seconds)
        if perf:
            os.killpg(perf.pid, signal.SIGINT)
            perf.wait(timeout=60)
            PROCS.remove(perf)
            with open(os.path.join(TMP, f"perf-{key}.txt"), "w") as f:
                subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                                "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.7"],
                               stdout=f, stderr=subprocess.DEVNULL, timeout=300)
            log(f"  profile: {TMP}/perf-{key}.txt")
        return {"key": key, "name": PATHS[key][0], "hops": PATHS[key][1], "saturation": sat,
                "rates": rates}
    finally:
        for p in reversed(procs):
            stop(p)


# Paths --instructions can count: agents and HAProxy (nginx forks), on the machine's own network.
COUNTABLE_PATHS = "bdefgijl"


def callgrind_control(pids, *flags):
    for pid in pids:
        r = subprocess.run(["callgrind_control", *flags, str(pid)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"callgrind_control {' '.join(flags)} {pid} failed: {(r.stdout + r.stderr)[-300:]}")


def send_requests(port, count, h2=False):
    """Exactly `count` requests, one after another on one kept-alive connection."""
    r = subprocess.run(["taskset", "-c", LOADGEN_CPU, "h2load"] + ([] if h2 else ["--h1"]) +
                       ["-n", str(count), "-c", "1", "-t", "1", target(port)],
                       capture_output=True, text=True, timeout=count + 60)
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", r.stdout)
    if not m or int(m.group(1)) != count:
        raise RuntimeError(f"{count} requests were not all answered: {(r.stdout + r.stderr)[-300:]}")


def warmup(requests):
    """The requests sent before a count starts (pools, Lua states, caches)."""
    return max(100, requests // 10)


def counted_run(key, agent_bin, backend, requests, wrapper, begin, end):
    """Starts the path's proxies under `wrapper`, sends warmup(N) requests to warm them up (pools,
    Lua states, caches), calls begin(pids), sends `requests` one after another on one
    kept-alive connection, and returns end(pids)."""
    global PROXY_WRAPPER
    PROXY_WRAPPER = wrapper
    try:
        procs, port, _ = setup_path(key, agent_bin, backend)
    finally:
        PROXY_WRAPPER = []
    try:
        pids = [p.pid for p in procs]
        h2 = key in HTTP2_PATHS
        send_requests(port, warmup(requests), h2)
        begin(pids)
        send_requests(port, requests, h2)
        return end(pids)
    finally:
        for p in reversed(procs):
            stop(p)


# Callgrind's cache simulation (--cache_sim): its events, and the names they are reported by.
CACHE_EVENTS = {"I1mr": "L1 instruction misses", "D1mr": "L1 data read misses", "D1mw": "L1 data write misses"}


def count_instructions(key, agent_bin, backend, requests, cache_sim=False):
    """User-space instructions per request in the path's proxies, counted by valgrind's
    callgrind: deterministic, so two builds can be compared to a fraction of a percent
    where requests/s on a shared machine varies by tens of percent. Kernel work is not
    counted. With `cache_sim`, also the L1 cache misses callgrind simulates: this VM has
    no hardware counters, and misses are what make one instruction dearer than another."""
    def begin(pids):
        callgrind_control(pids, "--instr=on")
        callgrind_control(pids, "--zero")

    def end(pids):
        callgrind_control(pids, "--dump")
        totals = {}
        for pid in pids:
            dumps = sorted(f for f in os.listdir(TMP) if f.startswith(f"callgrind-{key}-{pid}.out."))
            if not dumps:
                raise RuntimeError(f"callgrind wrote no dump for {pid} in {TMP}")
            with open(os.path.join(TMP, dumps[-1])) as f:
                text = f.read()
            events = re.search(r"^events: (.+)$", text, re.M)
            summary = re.search(r"^(?:summary|totals): ([\d ]+)$", text, re.M)
            if not events or not summary:
                raise RuntimeError(f"no event totals in {dumps[-1]}")
            for name, value in zip(events.group(1).split(), summary.group(1).split()):
                totals[name] = totals.get(name, 0) + int(value)
        # Callgrind leaves out the trailing events that counted nothing.
        result = {"key": key, "name": PATHS[key][0], "requests": requests,
                  "instructions_per_request": totals.get("Ir", 0) / requests}
        if cache_sim:
            result["cache_misses_per_request"] = {e: totals.get(e, 0) / requests for e in CACHE_EVENTS}
        return result

    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no"] + (["--cache-sim=yes"] if cache_sim else []) + [
        f"--callgrind-out-file={TMP}/callgrind-{key}-%p.out"]
    return counted_run(key, agent_bin, backend, requests, wrapper, begin, end)


def traced(pid):
    """Whether every thread of `pid` has a tracer attached."""
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                if re.search(r"^TracerPid:\s+0$", f.read(), re.M):
                    return False
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return bool(tasks)


def count_syscalls(key, agent_bin, backend, requests):
    """System calls per request in the path's proxies, by name, counted by strace -c attached
    to every thread after the warm-up. Deterministic up to the event loop's wake-ups
    (epoll_wait), which depend on timing."""
    tracers = []

    def begin(pids):
        for pid in pids:
            out = os.path.join(TMP, f"strace-{key}-{pid}.txt")
            tracers.append((start(f"strace-{key}-{pid}", ["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                                  LOADGEN_CPU), out))
        deadline = time.time() + 10
        while not all(traced(pid) for pid in pids):
            if time.time() > deadline:
                raise RuntimeError(f"strace did not attach to {pids} within 10 s")
            time.sleep(0.05)

    def end(_pids):
        calls, errors = {}, {}
        for tracer, out in tracers:
            tracer.send_signal(signal.SIGINT)  # detaches and writes the summary
            tracer.wait(timeout=30)
            with open(out) as f:
                for line in f:
                    # % time, seconds, usecs/call, calls, [errors,] syscall
                    m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*([a-z_0-9]+)$", line)
                    if m and m.group(3) != "total":
                        calls[m.group(3)] = calls.get(m.group(3), 0) + int(m.group(1))
                        errors[m.group(3)] = errors.get(m.group(3), 0) + int(m.group(2) or 0)
        if not calls:
            raise RuntimeError(f"strace counted no system calls in {[out for _, out in tracers]}")
        return {"key": key, "name": PATHS[key][0], "requests": requests,
                "syscalls_per_request": sum(calls.values()) / requests,
                "by_name": {n: {"calls": c / requests, "errors": errors[n] / requests}
                            for n, c in sorted(calls.items(), key=lambda x: -x[1])}}

    try:
        return counted_run(key, agent_bin, backend, requests, [], begin, end)
    finally:
        for tracer, _ in tracers:
            stop(tracer)


# --------------------------------------------------------------------------- report

def fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


# meshplug's path, its peer's, and what the ratio of the two is.
RATIOS = (("d", "b", "1 agent / 1 HAProxy"), ("e", "f", "2 agents / 2 HAProxies"),
          ("d", "c", "1 agent / 1 nginx"), ("g", "h", "agents+tokens / nginx+auth"),
          ("i", "j", "2 agents mTLS / 2 HAProxies TLS"),
          ("k", "e", "2 agents intercepted / 2 agents explicit proxy"),
          ("l", "m", "1 agent / 1 HAProxy, HTTP/2 both sides"))


def added_per_hop(r, base, i, q):
    """Path r's quantile q at its i-th rate minus the direct path's (`base`), per proxy hop;
    None when either was not measured."""
    x, b = r["rates"][i], base["rates"][i]
    if "skipped" in x or "skipped" in b or x[q] is None or b[q] is None:
        return None
    return (x[q] - b[q]) / r["hops"]


def by_repeat(results):
    """results.json's results as one list per run of the paths (files from before
    --repeats hold one)."""
    runs = {}
    for r in results:
        runs.setdefault(r.get("repeat", 0), []).append(r)
    return [runs[k] for k in sorted(runs)]


def full_report(runs, args, machine):
    if len(runs) == 1:
        return report(runs[0], args, machine)
    parts = [f"Repeat {run[0]['repeat'] + 1}:\n\n" + report(run, args, machine) for run in runs]
    summary = repeat_summary(runs, args)
    return "\n\n".join(parts + ([summary] if summary else []))


def repeat_summary(runs, args):
    """Each ratio's median and range over the runs: on a shared machine one run's ratio
    moves by tens of percent, the median of interleaved runs much less."""
    def spread(values, form=".2f"):
        v = sorted(values)
        mid = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
        return f"{mid:{form}} [{v[0]:{form}}, {v[-1]:{form}}]"

    def counted(values):  # when runs are missing from a figure (a path failed in them)
        return f" ({len(values)} of {len(runs)} runs)" if 0 < len(values) < len(runs) else ""

    rows = []
    keyed = [{r["key"]: r for r in run} for run in runs]
    for m, h, what in RATIOS:
        pairs = [(by[m], by[h], by.get("a")) for by in keyed if m in by and h in by]
        if not pairs:
            continue
        sat = lambda key, r: r["saturation"][key]
        cells = [spread([sat("rps", x) / sat("rps", y) for x, y, _ in pairs]),
                 spread([sat("cpu_ms_per_1k", x) / sat("cpu_ms_per_1k", y) for x, y, _ in pairs]),
                 spread([sat("rss_mb", x) / sat("rss_mb", y) for x, y, _ in pairs])]
        for i in range(len(args.rates)):
            p50 = []
            for x, y, a in pairs:
                ours, theirs = (added_per_hop(x, a, i, "p50"), added_per_hop(y, a, i, "p50")) if a else (None, None)
                if ours is not None and theirs is not None:
                    p50.append(ours - theirs)
            p99 = [x["rates"][i]["p99"] / y["rates"][i]["p99"] for x, y, _ in pairs
                   if "skipped" not in x["rates"][i] and "skipped" not in y["rates"][i]
                   and x["rates"][i]["p99"] and y["rates"][i]["p99"]]
            cells.append(f"{spread(p50, '+.3f') if p50 else '—'}{counted(p50)}; "
                         f"{spread(p99) if p99 else '—'}{counted(p99)}")
        rows.append(f"| {what}{counted(pairs)} | " + " | ".join(cells) + " |")
    if not rows:  # no pair of paths ran
        return ""
    return "\n".join([f"Over the {len(runs)} runs: median [lowest, highest] of each run's ratio, meshplug / peer. "
                      f"Added p50 per hop is the path's minus the direct path's in the same run; the column "
                      f"gives meshplug's minus the peer's, in ms.", "",
                      "| ratio | req/s | CPU / 1k req | peak RSS | " +
                      " | ".join(f"at {x:,} req/s: p50 added, meshplug − peer; p99 ratio" for x in args.rates) + " |",
                      "|---" * (4 + len(args.rates)) + "|"] + rows)


def report(results, args, machine):
    by = {r["key"]: r for r in results}
    base = by.get("a")
    lines = [f"Machine: {machine}. wrk -t1 -c{args.connections} for {args.seconds} s "
             + (f"(keep-alive); at fixed rates one h2load --h1 -c{args.rate_connections} --rps (its connections "
                f"send together) for " if args.rate_clients == "one h2load" else
                f"(keep-alive); at fixed rates {args.rate_connections} clients of one connection each (h2load --h1 "
                f"-c1 --rps, started one after another) for ")
             + f"{args.rate_seconds} s per rate (HTTP/2 paths l, m: h2load -c{args.connections} "
             f"-m{args.streams} for the saturation run, h2load --rps without --h1 at the rates). "
             f"Proxies on CPU {PROXY_CPU}, load generator and "
             f"backend on CPU {LOADGEN_CPU}."
             + (f" At fixed rates CPU{'s' if len(args.awake_cpus) > 1 else ''} "
                f"{' and '.join(args.awake_cpus)} kept awake (--awake)." if args.awake_cpus else ""), ""]
    lines += ["| path | req/s (wrk) | p50 ms | p99 ms | CPU ms / 1k req (user + system) | peak RSS MB | errors | other load on proxy CPU |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["saturation"]
        cpu = (f"{fmt(s['cpu_ms_per_1k'], '.1f')} ({fmt(s.get('user_ms_per_1k'), '.1f')} + "
               f"{fmt(s.get('sys_ms_per_1k'), '.1f')})")
        if not r["hops"]:
            cpu = "(backend) " + cpu
        lines.append(f"| {r['key']} {r['name']} | {s['rps']:,.0f} | {fmt(s['p50'])} | "
                     f"{fmt(s['p99'])} | {cpu} | {fmt(s['rss_mb'], '.1f') if r['hops'] else '—'} | "
                     f"{s['non2xx'] + s['socket_errors']} | {s['other_on_proxy_cpu']:.0%} |")
    lines += ["", "Latency at fixed rates (h2load; p50 / p99 in ms; added = (path − direct) / hops):", ""]
    header = "| path | " + " | ".join(f"{x:,} req/s p50 / p99" for x in args.rates) + " |"
    lines += [header, "|---" * (len(args.rates) + 1) + "|"]
    for r in results:
        cells = []
        for x in r["rates"]:
            cells.append("over saturation" if "skipped" in x else f"{fmt(x['p50'], '.3f')} / {fmt(x['p99'], '.3f')}"
                         + (f" ({x['errors']} err)" if x.get("errors") else ""))
        lines.append(f"| {r['key']} {r['name']} | " + " | ".join(cells) + " |")
    if base:
        lines += ["", "Added latency per hop at fixed rates (ms, p50 / p99):", "",
                  header.replace("req/s p50 / p99", "req/s"), "|---" * (len(args.rates) + 1) + "|"]
        for r in results:
            if not r["hops"]:
                continue
            cells = []
            for i in range(len(r["rates"])):
                p50, p99 = added_per_hop(r, base, i, "p50"), added_per_hop(r, base, i, "p99")
                cells.append("—" if p50 is None else f"{p50:.3f} / {p99:.3f}")
            lines.append(f"| {r['key']} {r['name']} | " + " | ".join(cells) + " |")
    lines += ["", "CPU ms per 1,000 requests at fixed rates (proxies only):", "",
              header.replace("req/s p50 / p99", "req/s"), "|---" * (len(args.rates) + 1) + "|"]
    for r in results:
        if not r["hops"]:
            continue
        lines.append(f"| {r['key']} {r['name']} | " + " | ".join(
            "—" if "skipped" in x else fmt(x.get("cpu_ms_per_1k"), ".1f") for x in r["rates"]) + " |")
    ratio = []
    for m, h, what in RATIOS:
        if m in by and h in by:
            sm, sh = by[m]["saturation"], by[h]["saturation"]
            ratio.append(f"| {what} | {sm['rps'] / sh['rps']:.2f} | {sm['p50'] / sh['p50']:.2f} | "
                         f"{sm['p99'] / sh['p99']:.2f} | {sm['cpu_ms_per_1k'] / sh['cpu_ms_per_1k']:.2f} | "
                         f"{sm['rss_mb'] / sh['rss_mb']:.2f} |")
    if "i" in by and "j" in by and "handshakes" in by["i"]["saturation"] and "handshakes" in by["j"]["saturation"]:
        hi, hj = by["i"]["saturation"]["handshakes"], by["j"]["saturation"]["handshakes"]
        lines += ["", f"New mTLS handshakes at the terminating proxy (openssl s_time -new, client certificate, "
                      f"{args.seconds} s):", "",
                  "| path | handshakes/s | CPU ms / 1k handshakes |", "|---|---|---|"]
        for r, h in ((by["i"], hi), (by["j"], hj)):
            lines.append(f"| {r['key']} {r['name']} | {h['per_second']:,.0f} | {h['server_cpu_ms_per_1k']:.1f} |")
        ratio.append(f"| new mTLS handshakes: agent / HAProxy | {hi['per_second'] / hj['per_second']:.2f} | — | — | "
                     f"{hi['server_cpu_ms_per_1k'] / hj['server_cpu_ms_per_1k']:.2f} | — |")
    if ratio:
        lines += ["", "Ratios at saturation (meshplug / peer; >1 is more, for req/s better, otherwise worse):", "",
                  "| ratio | req/s | p50 | p99 | CPU / 1k req | peak RSS |", "|---|---|---|---|---|---|"] + ratio
    return "\n".join(lines)


def print_counts(results, args, agent_bin, what):
    with open(os.path.join(TMP, f"{what}.json"), "w") as f:
        json.dump({"agent_bin": agent_bin, "results": results}, f, indent=1)
    requests = getattr(args, what)
    after = f"{requests} requests on one kept-alive connection after {warmup(requests)} to warm up"
    if what == "instructions":
        print(f"Proxies' user-space instructions per request (valgrind --tool=callgrind, {after}), "
              f"agent {agent_bin}:\n")
        cache = [e for e in CACHE_EVENTS if args.cache_sim]
        print("| path | instructions / request |" + "".join(f" {CACHE_EVENTS[e]} |" for e in cache))
        print("|---|---|" + "---|" * len(cache))
        for r in results:
            misses = "".join(f" {r['cache_misses_per_request'][e]:,.0f} |" for e in cache)
            print(f"| {r['key']} {r['name']} | {r['instructions_per_request']:,.0f} |{misses}")
    else:
        print(f"Proxies' system calls per request (strace -f -c, {after}; failed calls in brackets), "
              f"agent {agent_bin}:\n")
        print("| path | system calls / request | by name |\n|---|---|---|")
        for r in results:
            names = ", ".join(f"{n} {c['calls']:.2f}" + (f" [{c['errors']:.2f}]" if c["errors"] >= 0.01 else "")
                              for n, c in r["by_name"].items() if c["calls"] >= 0.01)
            print(f"| {r['key']} {r['name']} | {r['syscalls_per_request']:.2f} | {names} |")
    print(f"\nresults: {TMP}/{what}.json")


def plot(results, args, png):
    dat = os.path.join(TMP, "latency.dat")
    with open(dat, "w") as f:
        for r in results:
            if r["key"] not in "abcdef":
                continue
            f.write(f'"{r["key"]} {r["name"]}"\n')
            for x in r["rates"]:
                if "skipped" not in x and x["p50"] is not None:
                    f.write(f"{x['offered']} {x['p50']} {x['p99']}\n")
            f.write("\n\n")
    n = len([r for r in results if r["key"] in "abcdef"])
    gp = f"""
set terminal pngcairo size 900,600 font ",10" noenhanced
set output "{png}"
set title "Latency vs offered load ({args.rate_connections} h2load --h1 clients, keep-alive; proxies pinned to one core)"
set xlabel "offered load (requests/s)"
set ylabel "p99 latency (ms, log scale; dashed: p50)"
set logscale xy
set key below
set xrange [800:30000]
set grid
plot for [i=0:{n - 1}] "{dat}" index i using 1:3 with linespoints lw 2 lc i+1 title columnheader(1), \\
     for [i=0:{n - 1}] "{dat}" index i using 1:2 with lines dt 2 lc i+1 notitle
"""
    subprocess.run(["gnuplot"], input=gp, text=True, check=True, timeout=60)


def machine_line():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
        if m:
            model = m.group(1).strip()
    kernel = os.uname().release
    return f"{os.cpu_count()} × {model}, Linux {kernel}"


def versions():
    out = {}
    for name, cmd in (("nginx", ["nginx", "-v"]), ("haproxy", ["haproxy", "-v"]),
                      ("wrk", ["wrk", "-v"]), ("h2load", ["h2load", "--version"])):
        r = subprocess.run(cmd, capture_output=True, text=True)
        out[name] = (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "?"
    return out


def measure_with_retries(key, agent_bin, backend, args):
    """One path's figures (None when it failed), measured again while other work took more
    than --max_other_load of the proxies' CPU."""
    log(f"path {key}: {PATHS[key][0]}")
    try:
        r = measure(key, agent_bin, backend, args)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        # One path's failure (a tool missing, a process that did not start) costs
        # only that path's figures.
        log(f"  path {key} failed, left out of the results: {e}")
        return None
    # Other work on the proxies' CPU (a shared machine) skews a run: retry, and
    # keep the run with the least of it.
    for _ in range(args.retries):
        if not r["hops"] or r["saturation"]["other_on_proxy_cpu"] <= args.max_other_load:
            break
        log(f"  {r['saturation']['other_on_proxy_cpu']:.0%} of the proxy CPU went to other "
            f"work; running path {key} again")
        try:
            again = measure(key, agent_bin, backend, args)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            log(f"  the run again failed, the first one is kept: {e}")
            break
        if again["saturation"]["other_on_proxy_cpu"] < r["saturation"]["other_on_proxy_cpu"]:
            r = again
    s = r["saturation"]
    log(f"  {s['rps']:,.0f} req/s, p50 {s['p50']:.3f} ms, p99 {s['p99']:.3f} ms, "
        f"{s['cpu_ms_per_1k']:.1f} CPU ms/1k, {s['rss_mb']:.1f} MB, "
        f"errors {s['non2xx'] + s['socket_errors']}{by_status(s)}")
    for x in r["rates"]:
        if "skipped" not in x:
            log(f"  @{x['offered']}: achieved {x['achieved']}, p50 {x['p50']}, "
                f"p99 {x['p99']}, errors {x['errors']}{by_status(x)}")
    return r


def main():
    global TMP
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", default=None,
                    help="which paths to run (letters a-m, default all; k needs root; with --instructions the "
                         "countable ones)")
    ap.add_argument("--streams", type=int, default=10,
                    help="concurrent streams per connection in the HTTP/2 paths' saturation runs")
    ap.add_argument("--seconds", type=int, default=10, help="saturation run length")
    ap.add_argument("--rate_seconds", type=int, default=10, help="length of each fixed-rate run")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--rate_connections", type=int, default=16,
                    help="clients (one h2load connection each) sharing a fixed rate")
    ap.add_argument("--rates", default="1000,2000,5000,10000,20000")
    ap.add_argument("--quick", action="store_true", help="3 s runs, three rates")
    ap.add_argument("--skip_build", action="store_true")
    ap.add_argument("--agent_bin", default="", help="use this agent binary (implies --skip_build)")
    ap.add_argument("--out", default="", help="directory for results.json and logs")
    ap.add_argument("--plot", default=os.path.join(REPO, "docs/benchmarks-latency.png"),
                    help="PNG of latency vs offered load, from the first repeat ('' to skip)")
    ap.add_argument("--from_results", default="",
                    help="only print the tables and plot from an earlier results.json")
    ap.add_argument("--max_other_load", type=float, default=0.10,
                    help="rerun a path when more than this share of the proxy CPU went elsewhere")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--awake", action="store_true",
                    help="during the fixed-rate runs keep both CPUs from idling (a SCHED_IDLE spinner in an "
                         "autogroup of nice 19 on each): latency without the VM's wake-up of a halted vCPU")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run the paths this many times in turn (interleaved, so that drift of the machine "
                         "reaches every path alike) and add the ratios' median and range over the runs")
    ap.add_argument("--profile", default="", help="paths to profile with perf (e.g. 'dg')")
    ap.add_argument("--max_minutes", type=float, default=None,
                    help="hard limit for the whole run (default 40 per repeat)")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help=f"instead of timing, count the proxies' instructions per request over N requests "
                         f"with valgrind's callgrind (paths {COUNTABLE_PATHS})")
    ap.add_argument("--cache_sim", action="store_true",
                    help="with --instructions: also the L1 cache misses per request, simulated by callgrind")
    ap.add_argument("--syscalls", type=int, default=0, metavar="N",
                    help=f"instead of timing, count the proxies' system calls per request over N requests "
                         f"with strace (paths {COUNTABLE_PATHS})")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rate_seconds, args.rates = 3, 3, "1000,10000,20000"
    try:
        args.rates = [int(x) for x in args.rates.split(",") if x]
    except ValueError:
        ap.error(f"--rates must be comma-separated whole requests per second, got {args.rates!r}")
    if not args.rates or min(args.rates) <= 0:
        ap.error("--rates needs at least one rate, each above 0")
    if args.repeats < 1:
        ap.error(f"--repeats must be 1 or more, got {args.repeats}")
    if args.instructions and args.syscalls:
        ap.error("--instructions and --syscalls count one thing each: give one")
    if args.cache_sim and not args.instructions:
        ap.error("--cache_sim goes with --instructions N (it adds the cache misses to that count)")
    counting = "instructions" if args.instructions else "syscalls" if args.syscalls else None
    if args.paths is None:
        args.paths = COUNTABLE_PATHS if counting else "".join(PATHS)
    for option in ("paths", "profile"):
        unknown = sorted(set(getattr(args, option)) - set(PATHS))
        if unknown:
            ap.error(f"--{option}: unknown path(s) {''.join(unknown)}; paths are {''.join(sorted(PATHS))}")
    if counting:
        if getattr(args, counting) < 100:
            ap.error(f"--{counting} needs at least 100 requests, got {getattr(args, counting)}")
        other = sorted(set(args.paths) - set(COUNTABLE_PATHS))
        if other:
            ap.error(f"--{counting} counts paths {COUNTABLE_PATHS} only, not {''.join(other)}")
    if "k" in args.paths and os.geteuid() != 0:
        log("path k (interception) needs root for its network namespace and iptables rules: skipped")
        args.paths = args.paths.replace("k", "")
    if os.cpu_count() < 2:
        global PROXY_CPU
        PROXY_CPU = LOADGEN_CPU

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int((args.max_minutes or 40 * args.repeats) * 60))
    TMP = args.out or tempfile.mkdtemp(prefix="meshplug-dataplane-")
    os.makedirs(TMP, exist_ok=True)
    if args.from_results:
        with open(args.from_results) as f:
            saved = json.load(f)
        for k in ("seconds", "rate_seconds", "connections", "rate_connections", "rates"):
            setattr(args, k, saved["args"][k])
        # Not in files from before 2026-12-07's --awake and separate rate clients.
        # Until --awake covered both CPUs it kept the proxies' alone.
        args.awake_cpus = saved["args"].get("awake_cpus", [PROXY_CPU] if saved["args"].get("awake") else [])
        args.rate_clients = saved["args"].get("rate_clients", "one h2load")
        runs = by_repeat(saved["results"])
        print(full_report(runs, args, saved["machine"]))
        if args.plot and runs:
            plot(runs[0], args, args.plot)
        return
    try:
        ensure_tools(counting)
        agent_bin = args.agent_bin or build(args.skip_build)
        backend = start_backend()
        if counting:
            counted = []
            for key in args.paths:
                log(f"path {key}: {PATHS[key][0]}, counting {counting}")
                try:
                    if counting == "instructions":
                        counted.append(count_instructions(key, agent_bin, backend, args.instructions, args.cache_sim))
                    else:
                        counted.append(count_syscalls(key, agent_bin, backend, args.syscalls))
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"  path {key} failed, left out of the results: {e}")
            print_counts(counted, args, agent_bin, counting)
            return
        # Saved with the args: how the fixed rates were driven.
        args.rate_clients = "separate"
        args.awake_cpus = sorted({PROXY_CPU, LOADGEN_CPU}) if args.awake else []
        runs, machine = [], machine_line()
        for repeat in range(args.repeats):
            if args.repeats > 1:
                log(f"repeat {repeat + 1} of {args.repeats}")
            run = []
            for key in args.paths:
                r = measure_with_retries(key, agent_bin, backend, args)
                if r:
                    r["repeat"] = repeat
                    run.append(r)
            if run:
                runs.append(run)
            # After each repeat: a run stopped by --max_minutes keeps the repeats it finished.
            with open(os.path.join(TMP, "results.json"), "w") as f:
                json.dump({"machine": machine, "versions": versions(), "args": vars(args),
                           "results": [r for run in runs for r in run]}, f, indent=1)
        text = full_report(runs, args, machine)
        with open(os.path.join(TMP, "report.md"), "w") as f:
            f.write(text + "\n")
        print(text)
        print("\nVersions: " + "; ".join(f"{k}: {v}" for k, v in versions().items()))
        if args.plot and runs:
            plot(runs[0], args, args.plot)
            print(f"\nplot: {args.plot}")
        print(f"results: {TMP}/results.json")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
