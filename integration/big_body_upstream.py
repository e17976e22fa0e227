#!/usr/bin/python3
"""Upstream for the agent's memory test: GET /big?bytes=N streams N zero bytes (chunked,
64 KiB pieces); POST/PUT /sink reads the whole request body (Content-Length or chunked)
and answers with the number of bytes it read. Prints "upstream: listening on
127.0.0.1:PORT" when ready."""
import http.server
import signal
import sys
import urllib.parse

PIECE = b"\0" * 65536


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        left = int(query.get("bytes", ["0"])[0])
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while left > 0:
            piece = PIECE[: min(left, len(PIECE))]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            left -= len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                left = size
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))
                self.rfile.readline()
                total += size
        left = int(self.headers.get("Content-Length") or 0)
        total = left
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        return total

    def do_POST(self):
        body = str(self.read_body()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("upstream: listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
