"""Host programs for the host-fault tests (reliability.md (b)); run in a session
of their own by tests/test_host_faults.py. Their workers are fault workers.

``python -m tests.workers.fault_host MODE HOST_BACKEND WORKER_BACKEND DIR``:

- ``handshake``: open a `slow_start` worker (pid in ``DIR/spawned``, waits for
  ``DIR/go``); the test kills this host before the handshake.
- ``exit``: open two workers, one busy, print their pids as JSON, ``os._exit(0)``.
- ``ctrlc``: open two workers, one busy, print their pids as JSON, wait; a
  KeyboardInterrupt unwinds, closing them; print their states and
  ``INTERRUPTED``.
- ``sigterm``: start two workers in a task group, one busy; a SIGTERM handler
  cancels the group; print their states and ``CLOSED``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from isolated_workers import Timeouts, WorkerClient, open_worker, start_worker
from tests.workers.fault_messages import Faults
from tests.workers.messages import Hold

WORKER = "tests.workers.fault_worker"
#: Timeouts.shutdown of every worker of these hosts.
GRACE = 1.0


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def wait_for_file(path: Path) -> None:
    with anyio.fail_after(20):
        while not path.exists():
            await anyio.sleep(0.005)


async def open_two(
    stack: AsyncExitStack, worker_backend: str, busy: Path
) -> list[WorkerClient]:
    """Two workers, the first with a `Hold` in flight (it has entered)."""
    clients = [
        await stack.enter_async_context(
            open_worker(
                WORKER,
                messages=Faults,
                backend=worker_backend,
                timeouts=Timeouts(shutdown=GRACE),
            )
        )
        for _ in range(2)
    ]
    tg = await stack.enter_async_context(anyio.create_task_group())
    tg.start_soon(clients[0].send, Hold(str(busy)))
    await wait_for_file(busy)
    return clients


async def handshake(worker_backend: str, directory: Path) -> None:
    async with open_worker(
        "tests.workers.slow_start",
        messages=Faults,
        backend=worker_backend,
        args=[str(directory / "spawned"), str(directory / "go")],
        timeouts=Timeouts(startup=30, connect=1),
    ):
        say(error="the worker became ready")


async def exit_abruptly(worker_backend: str, directory: Path) -> None:
    async with AsyncExitStack() as stack:
        clients = await open_two(stack, worker_backend, directory / "busy")
        say(pids=[c.pid for c in clients])
        os._exit(0)


async def ctrlc(worker_backend: str, directory: Path) -> None:
    clients: list[WorkerClient] = []
    try:
        async with AsyncExitStack() as stack:
            clients = await open_two(stack, worker_backend, directory / "busy")
            say(pids=[c.pid for c in clients])
            await anyio.sleep_forever()
    finally:
        say(states=[c.state.name for c in clients])


async def sigterm(worker_backend: str, directory: Path) -> None:
    clients: list[WorkerClient] = []
    start = functools.partial(
        start_worker,
        WORKER,
        messages=Faults,
        backend=worker_backend,
        timeouts=Timeouts(shutdown=GRACE),
    )
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            clients = [await tg.start(start) for _ in range(2)]
            tg.start_soon(clients[0].send, Hold(str(directory / "busy")))
            await wait_for_file(directory / "busy")
            say(pids=[c.pid for c in clients])
            async for _ in signals:
                tg.cancel_scope.cancel()
                break
    say(states=[c.state.name for c in clients])
    say(done="CLOSED")


MODES: dict[str, Callable[[str, Path], Awaitable[None]]] = {
    "handshake": handshake,
    "exit": exit_abruptly,
    "ctrlc": ctrlc,
    "sigterm": sigterm,
}


def main(mode: str, host_backend: str, worker_backend: str, directory: str) -> None:
    # As in a terminal: a shell that starts a background job sets SIGINT to
    # SIG_IGN, which Python would keep; a Ctrl+C must raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        anyio.run(MODES[mode], worker_backend, Path(directory), backend=host_backend)
    except* KeyboardInterrupt:
        say(done="INTERRUPTED")


if __name__ == "__main__":
    main(*sys.argv[1:5])
