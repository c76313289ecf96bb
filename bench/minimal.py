"""The minimal anyio design: the bar that performance.md sets for S3.

What a careful user would write by hand with AnyIO alone: one Unix socket, a
12-byte header (body length, transaction id), msgpack bodies, a reader task that
parses every complete frame of each read, a writer task that sends every frame
queued meanwhile in one write, an event per call; the worker answers every
frame of a read in one write. No handshake, no timeouts, no crash handling.

Run by ``bench.py`` as ``python bench/minimal.py SOCKET BACKEND`` for the
worker; the host side is `open_minimal`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgpack  # type: ignore[import-untyped, unused-ignore]

HEADER = struct.Struct("!IQ")


def _frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Cut the complete frames off the front of ``buffer``."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while len(buffer) - offset >= HEADER.size:
        size, tx = HEADER.unpack_from(buffer, offset)
        end = offset + HEADER.size + size
        if end > len(buffer):
            break
        frames.append((tx, bytes(buffer[offset + HEADER.size : end])))
        offset = end
    del buffer[:offset]
    return frames


async def _serve(path: str) -> None:
    async with await anyio.connect_unix(path) as stream:
        buffer = bytearray()
        while True:
            try:
                buffer += await stream.receive(256 * 1024)
            except anyio.EndOfStream:
                return
            replies = [
                HEADER.pack(len(body), tx) + body  # the echo: same body back
                for tx, body in _frames(buffer)
            ]
            if replies:
                await stream.send(b"".join(replies))


@asynccontextmanager
async def open_minimal(
    backend: str,
) -> AsyncIterator[tuple[Callable[[Any], Awaitable[Any]], int]]:
    """Start a minimal worker; yield ``(call, pid)``."""
    directory = tempfile.mkdtemp(prefix="iw-bench-")
    path = os.path.join(directory, "s")
    try:
        async with await anyio.create_unix_listener(path) as listener:
            process = await anyio.open_process(
                [sys.executable, __file__, path, backend],
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
            )
            async with process, await listener.accept() as stream:
                pending: dict[int, Any] = {}
                outgoing: list[bytes] = []
                wanted = anyio.Event()
                counter = iter(range(1, 2**63))

                async def write() -> None:
                    nonlocal wanted
                    while True:
                        await wanted.wait()
                        wanted = anyio.Event()
                        data = b"".join(outgoing)
                        outgoing.clear()
                        await stream.send(data)

                async def read() -> None:
                    buffer = bytearray()
                    while True:
                        buffer += await stream.receive(256 * 1024)
                        for tx, body in _frames(buffer):
                            event = pending.pop(tx)
                            pending[tx] = msgpack.unpackb(body)
                            event.set()

                async def call(value: Any) -> Any:
                    tx = next(counter)
                    body = msgpack.packb(value)
                    event = pending[tx] = anyio.Event()
                    outgoing.append(HEADER.pack(len(body), tx) + body)
                    wanted.set()
                    await event.wait()
                    return pending.pop(tx)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    tg.start_soon(write)
                    try:
                        yield call, process.pid
                    finally:
                        tg.cancel_scope.cancel()
                await stream.send_eof()
                await process.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    anyio.run(_serve, sys.argv[1], backend=sys.argv[2])
