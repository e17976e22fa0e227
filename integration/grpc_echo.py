#!/usr/bin/env python3
"""A gRPC server and client on Debian's python3-grpcio (gRPC's own HTTP/2 stack), for tests
through the mesh. Messages are raw bytes: no generated code.

  grpc_echo.py serve [NAME]           prints "port N", serves demo.Echo until killed; Who
                                      answers NAME
  grpc_echo.py xds TARGET CALLS       a proxyless client (gRPC's xDS resolver, bootstrap from
                                      GRPC_XDS_BOOTSTRAP): CALLS calls of Who to TARGET
                                      (xds:///...), then one line per answer "NAME COUNT"
                                      and "failed N"
  grpc_echo.py count TARGET AUTHORITY CALLS
                                      the same through TARGET (an agent's outbound listener)
                                      to the service named AUTHORITY
  grpc_echo.py call TARGET AUTHORITY  every call kind through TARGET (an agent's outbound
                                      listener) to the service named AUTHORITY; one line
                                      per check, "name: result"
  grpc_echo.py ping TARGET AUTHORITY METHOD
                                      one unary call; prints its status ("OK", or the error's code and details)
"""
import sys
import time
from concurrent import futures

import grpc

SERVICE = "demo.Echo"


def serve(name):
    cancelled = []

    def unary(request, context):
        return request

    def server_stream(request, context):
        count, size = (int(v) for v in request.decode().split(":"))
        chunk = b"x" * size
        for _ in range(count):
            yield chunk

    def client_stream(request_iterator, context):
        return str(sum(len(m) for m in request_iterator)).encode()

    def bidi(request_iterator, context):
        for message in request_iterator:
            yield message

    def slow(request, context):
        time.sleep(float(request.decode()))
        return b"late"

    def endless(request, context):
        # Ticks until the call ends; only a cancellation ends it.
        context.add_callback(lambda: cancelled.append(1))
        while context.is_active():
            yield b"tick"
            time.sleep(0.01)

    def stats(request, context):
        return str(len(cancelled)).encode()

    def who(request, context):
        return name.encode()

    flaky_calls = []

    def flaky(request, context):
        # Every other call fails as an unavailable server would.
        flaky_calls.append(1)
        if len(flaky_calls) % 2 == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "flaky")
        return name.encode()

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Forbidden": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Endless": grpc.unary_stream_rpc_method_handler(endless),
        "Stats": grpc.unary_unary_rpc_method_handler(stats),
        "Who": grpc.unary_unary_rpc_method_handler(who),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    server.wait_for_termination()


def call(target, authority):
    channel = grpc.insecure_channel(
        target, options=[("grpc.default_authority", authority), ("grpc.max_receive_message_length", 8 << 20)]
    )

    def method(kind, name):
        return getattr(channel, kind)(f"/{SERVICE}/{name}")

    def report(name, run):
        try:
            print(f"{name}: {run()}", flush=True)
        except grpc.RpcError as e:
            print(f"{name}: {e.code().name} {e.details()}", flush=True)

    report("unary", lambda: method("unary_unary", "Unary")(b"hello", timeout=10).decode())
    # 100 MiB from the server, in 1 MiB messages.
    report("server_stream", lambda: sum(len(m) for m in method("unary_stream", "ServerStream")(b"100:1048576", timeout=120)))
    report("client_stream", lambda: method("stream_unary", "ClientStream")(iter([b"a" * 1000] * 1000), timeout=30).decode())
    report("bidi", lambda: sum(1 for _ in method("stream_stream", "Bidi")(iter([b"m"] * 100), timeout=30)))
    report("deadline", lambda: method("unary_unary", "Slow")(b"5", timeout=0.5))

    def cancel():
        stream = method("unary_stream", "Endless")(b"", timeout=30)
        next(stream)
        stream.cancel()
        try:
            next(stream)
        except grpc.RpcError as e:
            return e.code().name
        return "not cancelled"

    report("cancel", cancel)

    def server_saw_cancel():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = method("unary_unary", "Stats")(b"", timeout=5).decode()
            if seen != "0":
                return seen
            time.sleep(0.05)
        return "0"

    report("server_cancelled", server_saw_cancel)
    report("forbidden", lambda: method("unary_unary", "Forbidden")(b"x", timeout=10))


def tally(channel, calls):
    """CALLS calls of Who; one line per answer "NAME COUNT", then "failed N"."""
    who = channel.unary_unary(f"/{SERVICE}/Who")
    counts, failed = {}, 0
    deadline = time.monotonic() + 60
    for _ in range(calls):
        if time.monotonic() > deadline:
            break
        try:
            name = who(b"", timeout=5, wait_for_ready=True).decode()
            counts[name] = counts.get(name, 0) + 1
        except grpc.RpcError as e:
            failed += 1
            print(f"error {e.code().name} {e.details()}", flush=True)
    for name, count in sorted(counts.items()):
        print(f"{name} {count}", flush=True)
    print(f"failed {failed}", flush=True)


def xds(target, calls):
    tally(grpc.insecure_channel(target), calls)


def count(target, authority, calls):
    tally(grpc.insecure_channel(target, options=[("grpc.default_authority", authority)]), calls)


def ping(target, authority, name):
    channel = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
    try:
        channel.unary_unary(f"/{SERVICE}/{name}")(b"ping", timeout=2)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name, e.details())


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) <= 3:
        serve(sys.argv[2] if len(sys.argv) == 3 else "echo")
    elif sys.argv[1:2] == ["xds"] and len(sys.argv) == 4:
        xds(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["count"] and len(sys.argv) == 5:
        count(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1:2] == ["call"] and len(sys.argv) == 4:
        call(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["ping"] and len(sys.argv) == 5:
        ping(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
