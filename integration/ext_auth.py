#!/usr/bin/python3
"""The reference scenario's external auth service (docs/spec.md §11): 200 when the request's
x-iam-token header equals the token, else 401 "Unauthorized!". Any method, any path.

Usage: ext_auth.py [--host H] [--port N] [--token T]; --port 0 picks a free port. It prints
"ext-auth: listening on HOST:PORT" (default host 127.0.0.1) once ready, and stops on SIGTERM/SIGINT.
"""
import argparse
import http.server
import signal
import sys

TOKEN = "2f1acc6c3a606b082e5eef5e54414ffb"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    token = TOKEN

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        ok = self.headers.get("x-iam-token") == self.token
        body = b"" if ok else b"Unauthorized!"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = answer

    def log_message(self, fmt, *args):
        sys.stderr.write("ext-auth: %s %s\n" % (self.address_string(), fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8079)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    Handler.token = args.token
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ext-auth: listening on %s:%d" % (args.host, server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
