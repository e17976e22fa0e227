#!/usr/bin/env python3
"""A WebSocket echo server and client on Debian's python3-websockets, for tests through the
mesh.

  websocket_echo.py serve                    prints "port N", echoes every message until killed
  websocket_echo.py call HOST PORT AUTHORITY connects to HOST:PORT (an agent's outbound
                                             listener) asking for ws://AUTHORITY/; one line per
                                             check, "name: result"
"""
import asyncio
import sys

import websockets


async def serve():
    async def echo(socket, _path):
        async for message in socket:
            await socket.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


async def call(host, port, authority):
    async with websockets.connect(f"ws://{authority}/chat", host=host, port=int(port), max_size=None) as socket:
        texts = []
        for text in ("one", "two", "three"):
            await socket.send(text)
            texts.append(await socket.recv())
        print(f"texts: {','.join(texts)}", flush=True)
        blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
        await socket.send(blob)
        echoed = await socket.recv()
        print(f"binary: {len(echoed)} {'same' if echoed == blob else 'different'}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve())
    elif sys.argv[1:2] == ["call"] and len(sys.argv) == 5:
        asyncio.run(asyncio.wait_for(call(*sys.argv[2:5]), 30))
    else:
        sys.exit(__doc__)
