"""The handlers of the plain contract in ``tests/workers/messages.py``.

Imported by the workers that serve `Messages`. Importing this module performs
no handshake: ``serve_in_loop`` relies on `serve_worker` doing its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import importlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from isolated_workers import emit, get_startup_data
from isolated_workers._util import current_backend
from isolated_workers._worker._session import connect
from tests.workers.messages import (
    Add,
    Big,
    Compose,
    Composite,
    Count,
    CountState,
    CustomError,
    Echo,
    Echoed,
    Fail,
    Gather,
    GetStartup,
    GetStartupAs,
    Guarded,
    Hang,
    Hold,
    Look,
    Ping,
    Point,
    Print,
    Progress,
    Recall,
    Release,
    Remember,
    Running,
    SeenMeta,
    Sleep,
    Stall,
    StartupBundle,
    StartupReport,
    Store,
    Unregistered,
    View,
    Work,
)

remembered: list[int] = []
holding = 0
#: The meta of the request being handled, set by ``ext_worker``'s middleware.
request_meta: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "request_meta", default=None
)
# Made lazily: an anyio.Event needs the running event loop.
released: dict[str, anyio.Event] = {}
arrivals: dict[str, int] = {}
gathered: dict[str, anyio.Event] = {}


def mark(path: str) -> None:
    """Append a line to the marker ``path`` (synchronously: it must work in the
    ``finally`` of a cancelled handler, where an await would raise at once)."""
    with open(path, "a") as marker:
        marker.write(f"{os.getpid()}\n")


# --- values -------------------------------------------------------------------------


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data, msg.items, msg.label)


def add(msg: Add) -> int:
    return msg.a + msg.b


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


async def big(msg: Big) -> bytes:
    return b"x" * msg.size


def ping(msg: Ping) -> int:
    return os.getpid()


# --- records --------------------------------------------------------------------


def remember(msg: Remember) -> None:
    remembered.append(msg.value)


def store(msg: Store) -> int:
    remembered.append(msg.value)
    return len(msg.data)


def recall(msg: Recall) -> list[int]:
    return remembered


# --- errors -------------------------------------------------------------------------


def fail(msg: Fail) -> None:
    if msg.kind == "zero":
        1 / 0  # noqa: B018
    if msg.kind == "oserror":
        raise FileNotFoundError(errno.ENOENT, msg.text)
    if msg.kind == "custom":
        raise CustomError(msg.text, code="E42")
    if msg.kind == "long":
        raise ValueError(msg.text * 3000)
    raise ValueError(msg.text)


# --- waiting, blocking --------------------------------------------------------------


async def sleep(msg: Sleep) -> str:
    try:
        await anyio.sleep(msg.seconds)
    finally:
        if msg.marker:
            mark(msg.marker)
    return "slept"


async def hold(msg: Hold) -> int:
    global holding
    holding += 1
    try:
        if msg.marker:
            mark(msg.marker)
        await released.setdefault(msg.key, anyio.Event()).wait()
    finally:
        holding -= 1
        if msg.marker:
            mark(f"{msg.marker}.exited")
    return msg.value


def release(msg: Release) -> None:
    released.setdefault(msg.key, anyio.Event()).set()


def running(msg: Running) -> int:
    return holding


async def gather(msg: Gather) -> int:
    event = gathered.setdefault(msg.group, anyio.Event())
    arrivals[msg.group] = arrivals.get(msg.group, 0) + 1
    if arrivals[msg.group] >= msg.parties:
        event.set()
    await event.wait()
    return 2 * msg.x + 1


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


# --- startup data ---------------------------------------------------------------


def get_startup(msg: GetStartup) -> dict[str, Any]:
    # The session is cached: this repeats no handshake.
    return {"startup": get_startup_data()}


def get_startup_as(msg: GetStartupAs) -> StartupReport:
    bundle = get_startup_data(as_type=StartupBundle)
    return StartupReport(
        bundle=bundle,
        blob_type=type(bundle.blob).__name__,
        config_blob_type=type(bundle.config.blob).__name__,
        inner_type=type(bundle.config.inner).__qualname__,
    )


# --- for ext_worker's middleware ---------------------------------------------------


async def seen_meta(msg: SeenMeta) -> dict[str, str]:
    return request_meta.get() or {}


def guarded(msg: Guarded) -> int:
    return msg.value


# --- the process ------------------------------------------------------------------


def print_output(msg: Print) -> int:
    written = 0
    for stream, char in ((sys.stdout, "o"), (sys.stderr, "e")):
        stream.write((char * 1023 + "\n") * (msg.flood // 1024))
        stream.flush()
        written += msg.flood // 1024 * 1024
    for stream, text in ((sys.stdout, msg.stdout), (sys.stderr, msg.stderr)):
        stream.write(text)
        stream.flush()
        written += len(text.encode())
    if msg.raw:
        written += os.write(1, msg.raw.encode())
    return written


def _sibling() -> str | None:
    try:
        value: str = importlib.import_module("tr_sibling").VALUE
    except ModuleNotFoundError:
        return None
    return value


def _fds() -> dict[str, str]:
    fds: dict[str, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the fd listdir used
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def look(msg: Look) -> View:
    session = connect()  # the session of the handshake: this makes none
    channel = session.channel
    if isinstance(channel, socket.socket):
        transport, channel_fds = "socket", [channel.fileno()]
    else:
        transport, channel_fds = "pipe", [channel.read_fd, channel.write_fd]
    main = sys.modules["__main__"]  # the target the worker was started with
    return View(
        pid=os.getpid(),
        name=main.__name__,
        file=main.__file__ or "",
        argv=sys.argv,
        path0=sys.path[0],
        sibling=_sibling(),
        cmdline=Path("/proc/self/cmdline").read_bytes(),
        proc_environ=Path("/proc/self/environ").read_bytes(),
        environ=dict(os.environ),
        startup_data=repr(get_startup_data()),
        transport=transport,
        channel_fds=channel_fds,
        channel_inheritable=[os.get_inheritable(fd) for fd in channel_fds],
        pipe_fd=session.pipe_fd,
        fds=_fds(),
        stdin=sys.stdin.read(),
        stdin_raw=os.read(0, 16),
        loop=current_backend(uvloop=True),
    )


# --- events and streams -------------------------------------------------------------


async def work(msg: Work) -> int:
    for done in range(1, msg.steps + 1):
        await emit(Progress(done, msg.steps))
    if msg.stray:
        await emit(Unregistered())
    return msg.steps


counted = {"yielded": 0, "closed": 0}


async def count(msg: Count) -> AsyncIterator[int]:
    try:
        for i in range(msg.n):
            if i == msg.fail_at:
                raise ValueError(f"failed at {i}")
            if i == msg.crash_at:
                os._exit(3)
            counted["yielded"] += 1
            yield i
    finally:
        counted["closed"] += 1


def count_state(msg: CountState) -> list[int]:
    return [counted["yielded"], counted["closed"]]


def reset() -> None:
    """Forget every handler's state: for in-process tests, whose handlers run
    in the test's process from one test to the next."""
    global holding
    remembered.clear()
    holding = 0
    released.clear()
    arrivals.clear()
    gathered.clear()
    counted.update(yielded=0, closed=0)


HANDLERS: dict[type, Callable[[Any], Any]] = {
    Echo: echo,
    Add: add,
    Compose: compose,
    Big: big,
    Ping: ping,
    Remember: remember,
    Store: store,
    Recall: recall,
    Fail: fail,
    Sleep: sleep,
    Hold: hold,
    Release: release,
    Running: running,
    Gather: gather,
    Stall: stall,
    Hang: hang,
    GetStartup: get_startup,
    GetStartupAs: get_startup_as,
    SeenMeta: seen_meta,
    Guarded: guarded,
    Print: print_output,
    Look: look,
    Work: work,
    Count: count,
    CountState: count_state,
}
