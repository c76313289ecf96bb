"""A host with SIGPIPE's default action (as some command-line tools set it)
whose worker dies while the host writes it 32 MiB; prints SURVIVED if it lives.

``python -m tests.workers.sigpipe_host MARKER BACKEND [pipe]``: the fault
worker's `Stall` marks ``MARKER.entered``; ``pipe`` talks to it with
`PipeTransport`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import anyio

from isolated_workers import (
    PipeTransport,
    UnixSocketTransport,
    WorkerCrashedError,
    open_worker,
)
from tests.workers.fault_messages import Faults
from tests.workers.messages import Stall, Store


async def main(marker: str, transport: PipeTransport | UnixSocketTransport) -> None:
    async with open_worker(
        "tests.workers.fault_worker", messages=Faults, transport=transport
    ) as worker:

        async def stall() -> None:
            with contextlib.suppress(WorkerCrashedError):
                await worker.send(Stall(marker))

        async with anyio.create_task_group() as tg:
            tg.start_soon(stall)
            while not os.path.exists(f"{marker}.entered"):
                await anyio.sleep(0.01)

            async def kill_soon() -> None:
                await anyio.wait_all_tasks_blocked()  # the big write is stuck
                os.kill(worker.pid, signal.SIGKILL)

            tg.start_soon(kill_soon)
            with contextlib.suppress(WorkerCrashedError):
                await worker.send(Store(0, b"x" * (32 * 1024 * 1024)))
    print("SURVIVED", flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    pipe = sys.argv[3:] == ["pipe"]
    transport = PipeTransport() if pipe else UnixSocketTransport()
    anyio.run(main, sys.argv[1], transport, backend=sys.argv[2])
