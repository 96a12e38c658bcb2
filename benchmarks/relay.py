#!/usr/bin/env python3
"""Relays used by the benchmark.

The delaying TCP relay, for (8) tiers: a link of a given round-trip time between
two tiers.  It runs as a process of its own (asyncio), started by `Relay`:

    python3 benchmarks/relay.py LISTEN_PORT DEST_PORT ONE_WAY_MS

`HashingRelay`, for (3): the floor under any caching proxy written in Python, in
a thread of the benchmark itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import queue
import re
import socket
import sys
import threading
import time
from pathlib import Path

from common import free_port
from processes import Processes


def relay_main(listen_port: int, dest_port: int, one_way_ms: float):
    """Relay 127.0.0.1:listen_port to 127.0.0.1:dest_port, each direction delayed
    by one_way_ms; opening a connection to the far side costs one round trip."""
    delay = one_way_ms / 1000.0

    async def pipe(reader, writer, q_delay):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=512)

        async def sender():
            try:
                while True:
                    t, data = await q.get()
                    wait = t - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if data is None:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return

        task = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(262144)
                await q.put((loop.time() + q_delay, data or None))
                if not data:
                    break
        except (ConnectionError, OSError):
            await q.put((loop.time(), None))
        await task

    conns = [0]

    async def handle(creader, cwriter):
        conns[0] += 1
        if conns[0] % 50 == 0:
            print("connections: %d" % conns[0], flush=True)
        # Opening the connection to the far side costs one round trip.
        try:
            await asyncio.sleep(2 * delay)
            sreader, swriter = await asyncio.open_connection("127.0.0.1", dest_port)
        except OSError:
            cwriter.close()
            return
        for w in (cwriter, swriter):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(creader, swriter, delay), pipe(sreader, cwriter, delay),
                             return_exceptions=True)
        for w in (cwriter, swriter):
            with contextlib.suppress(Exception):
                w.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Relay:
    """The delaying relay in a process of its own, in front of 127.0.0.1:dest_port."""

    def __init__(self, work: Path, dest_port: int, rtt_ms: float, procs: Processes):
        self.procs = procs
        self.port = free_port()
        self.proc = procs.start([sys.executable, Path(__file__).resolve(), str(self.port), str(dest_port),
                                 str(rtt_ms / 2.0)], work / ("relay-%d.log" % self.port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                return
            time.sleep(0.05)
        raise RuntimeError("relay did not start")

    def stop(self):
        self.procs.stop(self.proc)


class HashingRelay:
    """The floor under any caching proxy written in Python, for section (3).

    It forwards one download from nginx to one client while a second thread computes the
    sha256 and writes the copy to tmpfs: blocking sockets, 1 MiB reads, no HTTP framework,
    no checks beyond the hash. What it reaches is what verifying and keeping a copy cost on
    this machine, set beside nginx's sendfile."""

    name = "relay"

    def __init__(self, upstream_port: int, path: str, out: Path):
        self.upstream_port, self.path, self.out = upstream_port, path, out
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/" % self.listener.getsockname()[1]
        self.sha256 = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        client, _ = self.listener.accept()
        self.listener.close()
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            client.recv(65536)
            upstream.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                             % self.path.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += upstream.recv(65536)
            head, body = head.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
            chunks: "queue.SimpleQueue[bytes | None]" = queue.SimpleQueue()
            digest = hashlib.sha256()

            def keep():
                with open(self.out, "wb", buffering=0) as f:
                    while (chunk := chunks.get()) is not None:
                        digest.update(chunk)
                        f.write(chunk)

            keeper = threading.Thread(target=keep)
            keeper.start()
            got = 0
            while body:
                chunks.put(body)
                client.sendall(body)
                got += len(body)
                body = upstream.recv(1 << 20) if got < length else b""
            chunks.put(None)
            keeper.join()
            self.sha256 = digest.hexdigest()
        self.out.unlink(missing_ok=True)


def main(argv=None):
    p = argparse.ArgumentParser(description="Delaying TCP relay on 127.0.0.1 (simulated link RTT).")
    p.add_argument("listen_port", type=int)
    p.add_argument("dest_port", type=int)
    p.add_argument("one_way_ms", type=float, help="delay of each direction (RTT/2)")
    a = p.parse_args(argv)
    relay_main(a.listen_port, a.dest_port, a.one_way_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
