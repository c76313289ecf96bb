"""A worker that blocks or dies on request, for the failure tests."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn

import anyio

from isolated_workers import run_worker
from tests.workers.fault_messages import (
    Allocate,
    Blob,
    Block,
    Crash,
    Faults,
    Ping,
    Say,
    Work,
)

# Limit the address space to what the worker uses now plus this much, so that
# a large allocation fails with MemoryError instead of exhausting the machine.
_HEADROOM_MIB = os.environ.get("FAULT_ADDRESS_SPACE_HEADROOM_MIB")
if _HEADROOM_MIB:
    with open("/proc/self/status") as status:
        vm_kib = next(
            int(line.split()[1]) for line in status if line.startswith("VmSize:")
        )
    limit = vm_kib * 1024 + int(_HEADROOM_MIB) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

# A respawn that must fail: the test creates this file after the first start.
_REFUSE_IF = os.environ.get("FAULT_REFUSE_START_IF")
if _REFUSE_IF and os.path.exists(_REFUSE_IF):
    raise SystemExit(f"refusing to start: {_REFUSE_IF} exists")


def note_entry(marker: str) -> None:
    """Append a line to ``marker``: the test counts lines to see who entered."""
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")


def ping(msg: Ping) -> int:
    return os.getpid()


async def block(msg: Block) -> None:
    note_entry(msg.marker)
    if msg.sync:
        while True:
            time.sleep(60)
    await anyio.sleep_forever()


async def work(msg: Work) -> int:
    if not os.path.exists(msg.gate):
        note_entry(msg.marker)
        # The test opens the gate from another process: poll the file.
        while not os.path.exists(msg.gate):
            await anyio.sleep(0.01)
    return 2 * msg.x


def _segfault() -> NoReturn:
    ctypes.string_at(0)
    raise AssertionError("unreachable")


def _raise_outside_handlers() -> NoReturn:
    # An exception escaping the worker's own code, not a handler's.
    raise SystemExit(1)


CRASHES: dict[str, Callable[[], object]] = {
    "sigkill": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "exit42": lambda: os._exit(42),
    "segv": _segfault,
    "abort": os.abort,
    "sys_exit0": lambda: sys.exit(0),
}


def crash(msg: Crash) -> None:
    CRASHES[msg.how]()


def blob(msg: Blob) -> int:
    return len(msg.data)


def allocate(msg: Allocate) -> int:
    if not msg.marker:
        return len(bytearray(msg.mib * 1024 * 1024))
    chunks = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))  # zeroed: the pages are touched
        if len(chunks) == 1:
            note_entry(msg.marker)
        if len(chunks) * 16 >= msg.mib:
            time.sleep(3600)


def say(msg: Say) -> None:
    sys.stdout.write(msg.stdout)
    sys.stdout.flush()
    sys.stderr.write(msg.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    run_worker(
        Faults,
        {
            Ping: ping,
            Block: block,
            Work: work,
            Crash: crash,
            Say: say,
            Blob: blob,
            Allocate: allocate,
        },
    )
