#!/usr/bin/python3
"""A TCP service and its client for tests of TCP through the mesh.

  tcp_echo.py serve --port N [--host H]
                               reads each connection until the client half-closes, answers
                               "echo:" + what it read, and closes; prints
                               "tcp-echo: listening on H:PORT" (default 127.0.0.1) once ready.
  tcp_echo.py call HOST PORT TEXT
                               sends TEXT, half-closes, prints all that comes back; exits 1
                               when the connection fails (10 s at most).
"""
import socket
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        data = b""
        while True:
            piece = self.request.recv(65536)
            if not piece:
                break
            data += piece
        self.request.sendall(b"echo:" + data)


def main():
    if len(sys.argv) in (4, 6) and sys.argv[1] == "serve" and sys.argv[2] == "--port":
        host = sys.argv[5] if len(sys.argv) == 6 and sys.argv[4] == "--host" else "127.0.0.1"
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((host, int(sys.argv[3])), Echo)
        print("tcp-echo: listening on %s:%d" % (host, server.server_address[1]), flush=True)
        server.serve_forever()
    elif len(sys.argv) == 5 and sys.argv[1] == "call":
        try:
            with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10) as s:
                s.sendall(sys.argv[4].encode())
                s.shutdown(socket.SHUT_WR)
                answer = b""
                while True:
                    piece = s.recv(65536)
                    if not piece:
                        break
                    answer += piece
        except OSError as e:
            print("tcp-echo: %s" % e, file=sys.stderr)
            sys.exit(1)
        sys.stdout.write(answer.decode())
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
