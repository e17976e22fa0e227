#!/usr/bin/env python3
"""Wake-ups per request: what a proxy's sends cost the machine's scheduler at saturation.

    /usr/bin/python3 bench/dataplane/wakeups.py --agent_bin AGENT [--paths bd] [--seconds 8] [--runs 2]

Each path of run.py under wrk's load (64 connections), with `perf stat -a` counting over
the whole machine: wake-ups, inter-processor interrupts, context switches and
`epoll_wait` calls per request, and the proxies' own user and system time per request.
A send that wakes a peer sleeping on the other core costs the sender an IPI; a proxy that
sends each response as soon as it has it wakes its peers more often than one that sends a
turn's responses together (docs/benchmarks.md §4.2, tenth session). `--runs` repeats the
paths, interleaved. Installs what it needs as run.py does (perf: linux-perf); root, for the
scheduler's tracepoints.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

EVENTS = {
    "sched:sched_waking": "wake-ups",
    "ipi:ipi_send_cpu": "IPIs sent",
    "context-switches": "context switches",
    "syscalls:sys_enter_epoll_wait": "epoll_wait calls",
}


def measure(key, agent_bin, backend, seconds):
    procs, port, _ = run.setup_path(key, agent_bin, backend)
    try:
        run.run_wrk(port, 1, 64)  # a check request, then warm-up
        pids = [q for p in procs for q in run.tree(p.pid)]
        perf = subprocess.Popen(["perf", "stat", "-a", "-x", ",", "-e", ",".join(EVENTS)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        run.PROCS.append(perf)  # stopped with the rest if this fails
        time.sleep(0.3)  # perf has opened its counters
        u0, s0 = run.cpu_times(pids)
        sat = run.run_wrk(port, seconds, 64)
        u1, s1 = run.cpu_times(pids)
        os.killpg(perf.pid, signal.SIGINT)
        counts = {}
        output = perf.communicate(timeout=60)[1]
        run.PROCS.remove(perf)
        for line in output.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] in EVENTS and fields[0].replace(".", "").isdigit():
                counts[fields[2]] = float(fields[0])
        n = max(1, sat["requests"])
        return {"rps": sat["rps"], "user_us": 1e6 * (u1 - u0) / n, "sys_us": 1e6 * (s1 - s0) / n,
                **{EVENTS[e]: counts.get(e, float("nan")) / n for e in EVENTS}}
    finally:
        for p in reversed(procs):
            run.stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent_bin", required=True)
    ap.add_argument("--paths", default="bd")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    unknown = sorted(set(args.paths) - set(run.COUNTABLE_PATHS))
    if unknown:
        sys.exit(f"--paths: {''.join(unknown)} not among {run.COUNTABLE_PATHS}")
    h2 = sorted(set(args.paths) & set(run.HTTP2_PATHS))
    if h2:
        sys.exit(f"--paths: {''.join(h2)} take HTTP/2 clients; this tool drives wrk (HTTP/1.1) only")
    if args.seconds < 1 or args.runs < 1:
        sys.exit("--seconds and --runs: at least 1")
    if os.geteuid() != 0:
        sys.exit("needs root: perf stat -a with scheduler tracepoints")
    run.ensure_tools("wakeups")
    if subprocess.run(["perf", "--version"], capture_output=True).returncode != 0:
        sys.exit("perf does not run here (linux-perf has no perf for this kernel)")
    run.TMP = tempfile.mkdtemp(prefix="meshplug-wakeups-")
    backend = run.start_backend()
    rows = []
    try:
        for i in range(args.runs):
            for key in args.paths:
                rows.append((i + 1, key, measure(key, args.agent_bin, backend, args.seconds)))
    finally:
        run.stop(backend.proc)
        run.stop_all()
    print(f"Per request at saturation (wrk, 64 connections, {args.seconds} s; perf stat -a), agent {args.agent_bin}:\n")
    print("| run | path | req/s | user µs | system µs | " + " | ".join(EVENTS.values()) + " |")
    print("|---" * (5 + len(EVENTS)) + "|")
    for i, key, r in rows:
        print(f"| {i} | {key} {run.PATHS[key][0]} | {r['rps']:,.0f} | {r['user_us']:.2f} | {r['sys_us']:.2f} | "
              + " | ".join(f"{r[name]:.3f}" for name in EVENTS.values()) + " |")


if __name__ == "__main__":
    main()
