"""Transports: the same worker over a Unix socket in a directory of your
choice, and over its stdin and stdout.

Run it from anywhere::

    python examples/transports.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from backend_option import run
from primes_messages import CountPrimes, Messages, WorkerConfig

from isolated_workers import PipeTransport, UnixSocketTransport, open_worker

WORKER = Path(__file__).with_name("primes_worker.py")


async def main(socket_home: str) -> None:
    # The default: a Unix socket, alone in a fresh private directory that the
    # host makes in the system's temporary directory.
    async with open_worker(
        WORKER, messages=Messages, startup_data=WorkerConfig(name="socket")
    ) as worker:
        result = await worker.send(CountPrimes(below=1000))
        print(f"{result.worker}: {result.count} primes below {result.below}")

    # The same, with the private directory made in one you choose.
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=WorkerConfig(name="socket in a chosen directory"),
        transport=UnixSocketTransport(directory=socket_home),
    ) as worker:
        # The socket went as soon as the worker had connected and proved
        # that it knows its secret.
        print(f"Left in the directory once connected: {os.listdir(socket_home)}")
        result = await worker.send(CountPrimes(below=1000))
        print(f"{result.worker}: {result.count} primes below {result.below}")

    # The worker's stdin and stdout carry the messages.
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=WorkerConfig(name="pipes"),
        transport=PipeTransport(),
    ) as worker:
        result = await worker.send(CountPrimes(below=1000))
        print(f"{result.worker}: {result.count} primes below {result.below}")


if __name__ == "__main__":
    # A directory of this user's, writable by nobody else, as the transport
    # requires; mkdtemp makes it so.
    with tempfile.TemporaryDirectory() as socket_home:
        run(main, socket_home)
