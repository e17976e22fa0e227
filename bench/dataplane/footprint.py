#!/usr/bin/env python3
"""How much data one agent touches per request: distinct 64-byte cache lines and 4 KB
pages, by mapping (heap, stack, the binary's read-only data, ...).

    /usr/bin/python3 bench/dataplane/footprint.py --agent_bin AGENT [--requests 100]

Path d of run.py (one agent, inbound), its agent run under valgrind's lackey, which
reports every memory access. After run.py's warm-up, `--requests` requests go one after
another on one kept-alive connection; the data accesses they make are cut into windows of
one request's worth, and each window's distinct lines and pages are counted (the median
is reported). What a request touches has to fit in the L1 data cache (512 lines of 64 bytes
here) and the first-level TLB, or it is fetched again on the next request: callgrind's
cache simulation (run.py --instructions N --cache_sim) counts the misses, this shows
where the lines are. Agents only: HAProxy's start-up under lackey takes longer than a
run allows.
"""
import argparse
import bisect
import collections
import os
import statistics
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


class Trace(threading.Thread):
    """Reads lackey's log from a FIFO and keeps the data addresses accessed while marked."""

    def __init__(self, fifo):
        super().__init__(daemon=True)
        self.fifo, self.recording, self.addresses = fifo, False, []

    def run(self):
        with open(self.fifo) as f:
            for line in f:
                # " L 04225ad8,8", " S ...", " M ..."; "I ..." are instruction fetches.
                if self.recording and line[:2] in (" L", " S", " M"):
                    self.addresses.append(int(line[3:line.index(",")], 16))


def mappings(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            name = os.path.basename(parts[5]) if len(parts) > 5 else "[anonymous]"
            out.append((lo, hi, f"{name} {parts[1]}"))
    return sorted(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent_bin", required=True)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.requests < 10:
        sys.exit("--requests: at least 10, to cut the trace into windows")
    run.ensure_tools("instructions")  # valgrind
    run.TMP = args.out or tempfile.mkdtemp(prefix="meshplug-footprint-")
    os.makedirs(run.TMP, exist_ok=True)
    fifo = os.path.join(run.TMP, "lackey.fifo")
    if os.path.exists(fifo):
        os.remove(fifo)
    os.mkfifo(fifo)
    trace = Trace(fifo)
    trace.start()

    def begin(_pids):
        trace.recording = True

    def end(pids):
        trace.recording = False
        return mappings(pids[0])

    backend = run.start_backend()
    try:
        maps = run.counted_run("d", args.agent_bin, backend, args.requests,
                               ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={fifo}"], begin, end)
    finally:
        run.stop(backend.proc)
    trace.join(timeout=60)
    addresses = trace.addresses
    per_request = len(addresses) // args.requests
    if per_request == 0:
        sys.exit("no data accesses were traced")
    windows = [addresses[i:i + per_request] for i in range(0, per_request * args.requests, per_request)]
    sizes = [(len({a >> 6 for a in w}), len({a >> 12 for a in w})) for w in windows]
    median = sorted(range(len(windows)), key=lambda i: sizes[i][0])[len(windows) // 2]
    starts = [m[0] for m in maps]
    lines, pages = collections.defaultdict(set), collections.defaultdict(set)
    for a in windows[median]:
        i = bisect.bisect_right(starts, a) - 1
        where = maps[i][2] if i >= 0 and a < maps[i][1] else "?"
        where = f"{where} at {maps[i][0]:x}" if where.startswith("[anonymous]") else where
        lines[where].add(a >> 6)
        pages[where].add(a >> 12)
    print(f"Data the agent of path d touches per request ({args.requests} requests after "
          f"{run.warmup(args.requests)} to warm up; {per_request:,} data accesses each), "
          f"agent {args.agent_bin}:\n")
    print(f"distinct 64-byte lines: median {statistics.median(s[0] for s in sizes):,.0f} "
          f"(min {min(s[0] for s in sizes):,}, max {max(s[0] for s in sizes):,}); "
          f"distinct 4 KB pages: median {statistics.median(s[1] for s in sizes):,.0f}\n")
    print("| mapping (the median window) | lines | pages |\n|---|---|---|")
    for where in sorted(lines, key=lambda w: -len(lines[w]))[:12]:
        print(f"| {where} | {len(lines[where])} | {len(pages[where])} |")


if __name__ == "__main__":
    main()
