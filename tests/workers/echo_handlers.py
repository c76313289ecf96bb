"""The handlers of the shared registry in ``tests/workers/messages.py``.

Imported by the workers that serve `Messages`. Importing this module performs
no handshake: ``serve_in_loop`` relies on `serve_worker` doing its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import importlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio

from isolated_workers import emit, get_startup_data
from isolated_workers._util import current_backend
from isolated_workers._worker._session import connect
from tests.workers.messages import (
    Add,
    Count,
    CountState,
    Echo,
    Echoed,
    Fail,
    GetStartup,
    Guarded,
    Hold,
    Look,
    Print,
    Progress,
    Recall,
    Release,
    Remember,
    SeenMeta,
    Sleep,
    Unregistered,
    View,
    Work,
)

remembered: list[int] = []
#: The meta of the request being handled, set by ``ext_worker``'s middleware.
request_meta: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "request_meta", default=None
)
# Made lazily: an anyio.Event needs the running event loop.
released: list[anyio.Event] = []


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data, msg.items, msg.label)


def add(msg: Add) -> int:
    return msg.a + msg.b


def fail(msg: Fail) -> None:
    if msg.kind == "zero":
        1 / 0  # noqa: B018
    if msg.kind == "oserror":
        raise FileNotFoundError(errno.ENOENT, msg.text)
    raise ValueError(msg.text)


async def sleep(msg: Sleep) -> str:
    try:
        await anyio.sleep(msg.seconds)
    finally:
        if msg.marker:
            # Blocking on purpose: an await here would not run once cancelled.
            Path(msg.marker).write_text(f"{os.getpid()}")
    return "slept"


def get_startup(msg: GetStartup) -> dict[str, Any]:
    # The session is cached: this repeats no handshake.
    return {"startup": get_startup_data()}


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


def _released() -> anyio.Event:
    if not released:
        released.append(anyio.Event())
    return released[0]


async def hold(msg: Hold) -> int:
    await _released().wait()
    return msg.value


def release(msg: Release) -> None:
    _released().set()


async def seen_meta(msg: SeenMeta) -> dict[str, str]:
    return request_meta.get() or {}


def guarded(msg: Guarded) -> int:
    return msg.value


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


def remember(msg: Remember) -> None:
    remembered.append(msg.value)


def recall(msg: Recall) -> list[int]:
    return remembered


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


HANDLERS: dict[type, Callable[[Any], Any]] = {
    Echo: echo,
    Add: add,
    Fail: fail,
    Sleep: sleep,
    GetStartup: get_startup,
    Hold: hold,
    Release: release,
    SeenMeta: seen_meta,
    Guarded: guarded,
    Print: print_output,
    Look: look,
    Remember: remember,
    Recall: recall,
    Work: work,
    Count: count,
    CountState: count_state,
}
