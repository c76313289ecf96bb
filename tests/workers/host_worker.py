"""The worker of test_host.py: one handler per behaviour the host tests observe.

Startup data, when it is a dict, may hold ``worker_max_frame_size`` (passed to
`run_worker`).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from isolated_workers import get_startup_data, run_worker
from tests.workers.host_messages import (
    Active,
    Big,
    Block,
    Compose,
    Composite,
    Echo,
    Echoed,
    Explode,
    GetPid,
    GetStartupAs,
    GetStartupRaw,
    Hang,
    Hold,
    HostCustomError,
    HostMessages,
    Nap,
    Point,
    Record,
    Records,
    Rendezvous,
    Stall,
    StartupBundle,
    StartupReport,
    Store,
)

startup = get_startup_data()
records: list[int] = []
holding = 0
# Created lazily: an anyio.Event needs the running event loop.
arrivals: dict[str, int] = {}
gathered: dict[str, anyio.Event] = {}


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data)


async def compose(msg: Compose) -> Composite:
    await anyio.lowlevel.checkpoint()
    points = [Point(msg.seed + i, i / 4) for i in range(3)]
    return Composite(
        name=f"seed-{msg.seed}",
        points=points,
        by_name={f"p{i}": p for i, p in enumerate(points)},
        pair=(msg.seed, str(msg.seed)),
        blob=bytes(range(msg.seed, msg.seed + 4)),
        maybe=None if msg.seed % 2 else msg.seed,
        flag=msg.seed > 0,
        nothing=None,
    )


def get_pid(msg: GetPid) -> int:
    return os.getpid()


def record(msg: Record) -> None:
    records.append(msg.value)


def store(msg: Store) -> int:
    records.append(msg.value)
    return len(msg.data)


def get_records(msg: Records) -> list[int]:
    return records


async def rendezvous(msg: Rendezvous) -> int:
    event = gathered.setdefault(msg.group, anyio.Event())
    arrivals[msg.group] = arrivals.get(msg.group, 0) + 1
    if arrivals[msg.group] >= msg.parties:
        event.set()
    await event.wait()
    return arrivals[msg.group]


def mark(path: str) -> None:
    """Append a line to the marker ``path``, a test's beacon (synchronously: it
    must work in ``finally`` blocks of cancelled handlers, where an await would
    raise at once)."""
    with open(path, "a") as marker:
        marker.write(f"{os.getpid()}\n")


async def block(msg: Block) -> str:
    mark(f"{msg.marker}.entered")
    try:
        await anyio.sleep_forever()
    finally:
        mark(f"{msg.marker}.exited")
    return "unreachable"


async def hold(msg: Hold) -> None:
    global holding
    holding += 1
    try:
        await anyio.sleep_forever()
    finally:
        holding -= 1


def active(msg: Active) -> int:
    return holding


async def nap(msg: Nap) -> str:
    await anyio.sleep(msg.seconds)
    return "rested"


def stall(msg: Stall) -> str:
    mark(f"{msg.marker}.entered")
    release = Path(f"{msg.marker}.release")
    deadline = time.monotonic() + 20
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


def hang(msg: Hang) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    mark(msg.marker)
    while True:
        time.sleep(0.05)


def explode(msg: Explode) -> None:
    if msg.kind == "zero":
        1 / 0  # noqa: B018
    if msg.kind == "oserror":
        raise FileNotFoundError(errno.ENOENT, msg.text)
    if msg.kind == "custom":
        raise HostCustomError(msg.text, code="E42")
    if msg.kind == "long":  # an error too large for a small max_frame_size
        raise ValueError(msg.text * 3000)
    raise ValueError(f"unknown kind {msg.kind!r}")


async def big(msg: Big) -> bytes:
    return b"x" * msg.size


def get_startup_raw(msg: GetStartupRaw) -> Any:
    return get_startup_data()


def get_startup_as(msg: GetStartupAs) -> StartupReport:
    bundle = get_startup_data(as_type=StartupBundle)
    return StartupReport(
        bundle=bundle,
        blob_type=type(bundle.blob).__name__,
        config_blob_type=type(bundle.config.blob).__name__,
        inner_type=type(bundle.config.inner).__qualname__,
    )


if __name__ == "__main__":
    limit = startup.get("worker_max_frame_size") if isinstance(startup, dict) else None
    run_worker(
        HostMessages,
        {
            Echo: echo,
            Compose: compose,
            GetPid: get_pid,
            Record: record,
            Store: store,
            Records: get_records,
            Rendezvous: rendezvous,
            Block: block,
            Hold: hold,
            Active: active,
            Nap: nap,
            Stall: stall,
            Hang: hang,
            Explode: explode,
            Big: big,
            GetStartupRaw: get_startup_raw,
            GetStartupAs: get_startup_as,
        },
        **({"max_frame_size": limit} if limit else {}),
    )
