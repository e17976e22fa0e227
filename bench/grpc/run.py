#!/usr/bin/python3
"""gRPC through two agents vs direct: unary calls per second and server-streaming
throughput, with the agents' CPU.

    /usr/bin/python3 bench/grpc/run.py            # build the agent (-c opt), run, print a table
    /usr/bin/python3 bench/grpc/run.py --quick    # 3 s per run

The server is integration/grpc_echo.py (Debian's python3-grpcio, gRPC's C core) on CPU 0
with the load generator; the two agents (client side A → server side B, clusters of
protocol grpc, so HTTP/2 on every hop) share CPU 1, one worker each. The load is h2load
with gRPC-framed request bodies (content-type application/grpc, te: trailers):

  unary   POST /demo.Echo/Unary, a 64-byte message, -c16 -m10: calls/s
  stream  POST /demo.Echo/ServerStream asking for 64 messages of 64 KiB (4 MiB per call),
          -c4 -m1: MB/s of response

each direct to the server and through the two agents. Reuses bench/dataplane/run.py's
process handling (free ports, pinning, stop on exit).
"""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dataplane"))
import run as dp  # noqa: E402


def grpc_frame(message):
    """One gRPC message: not compressed, 4-byte big-endian length, the bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def h2load(port, path, body_file, conns, streams, seconds):
    cmd = ["taskset", "-c", dp.LOADGEN_CPU, "h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
           "-D", str(seconds), "--warm-up-time", "1", "-d", body_file,
           "-H", "content-type: application/grpc", "-H", "te: trailers", f"http://127.0.0.1:{port}{path}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(\w+)/s", r.stdout)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     r.stdout)
    codes = re.search(r"status codes: (\d+) 2xx", r.stdout)
    if not rps or not done:
        raise RuntimeError(f"h2load gave no figures: {(r.stdout + r.stderr)[-400:]}")
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[rps.group(3)]
    return {"calls_per_s": float(rps.group(1)), "mb_per_s": float(rps.group(2)) * scale,
            "done": int(done.group(1)), "failed": int(done.group(3)) + int(done.group(4)),
            "ok": int(codes.group(1)) if codes else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="3 s per run")
    ap.add_argument("--skip_build", action="store_true")
    ap.add_argument("--agent_bin", default="")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 3
    dp.TMP = tempfile.mkdtemp(prefix="meshplug-grpc-bench-")
    try:
        dp.ensure_tools()
        agent_bin = args.agent_bin or dp.build(args.skip_build)
        server = dp.start("grpc-server", ["/usr/bin/python3", os.path.join(dp.REPO, "integration/grpc_echo.py"),
                                          "serve"], dp.LOADGEN_CPU, stdout=subprocess.PIPE)
        line = server.stdout.readline().decode()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise RuntimeError(f"the gRPC server said {line!r}")
        app = int(m.group(1))
        pb, _, inbound = dp.start_agent(agent_bin, "agent-b", dp.snapshot("1", True, app, protocol="PROTOCOL_GRPC"))
        pa, outbound, _ = dp.start_agent(agent_bin, "agent-a",
                                         dp.snapshot("1", False, inbound, protocol="PROTOCOL_GRPC"))
        unary = os.path.join(dp.TMP, "unary.bin")
        with open(unary, "wb") as f:
            f.write(grpc_frame(b"x" * 64))
        stream = os.path.join(dp.TMP, "stream.bin")
        with open(stream, "wb") as f:
            f.write(grpc_frame(b"64:65536"))
        agents = dp.tree(pa.pid) + dp.tree(pb.pid)
        rows = []
        for kind, path, body, conns, streams in (("unary", "/demo.Echo/Unary", unary, 16, 10),
                                                 ("stream", "/demo.Echo/ServerStream", stream, 4, 1)):
            for where, port in (("direct", app), ("two agents", outbound)):
                h2load(port, path, body, conns, streams, 1)  # warm-up
                c0 = dp.cpu_seconds(agents)
                r = h2load(port, path, body, conns, streams, args.seconds)
                c1 = dp.cpu_seconds(agents)
                r["agents_cpu_ms_per_call"] = (c1 - c0) * 1000.0 / max(1, r["done"]) if where != "direct" else None
                rows.append((kind, where, r))
                dp.log(f"{kind} {where}: {r}")
        print(f"\ngRPC through two agents vs direct ({args.seconds} s per run; server and h2load on CPU "
              f"{dp.LOADGEN_CPU}, both agents on CPU {dp.PROXY_CPU}):\n")
        print("| call | path | calls/s | response MB/s | agents' CPU ms / call | failed | 2xx |")
        print("|---|---|---|---|---|---|---|")
        for kind, where, r in rows:
            cpu = "—" if r["agents_cpu_ms_per_call"] is None else f"{r['agents_cpu_ms_per_call']:.3f}"
            print(f"| {kind} | {where} | {r['calls_per_s']:,.0f} | {r['mb_per_s']:,.1f} | {cpu} | {r['failed']} | {r['ok']} |")
        for kind in ("unary", "stream"):
            d, a = [r for k, w, r in rows if k == kind]
            print(f"\n{kind}: two agents / direct = {a['calls_per_s'] / d['calls_per_s']:.2f}× calls/s, "
                  f"{a['mb_per_s'] / max(d['mb_per_s'], 1e-9):.2f}× MB/s")
    finally:
        dp.stop_all()


if __name__ == "__main__":
    main()
