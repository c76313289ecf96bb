"""The fault-injection worker of the reliability tests (reliability.md (a)-(f)).

Startup data (optional, a dict) chooses how it serves:

- ``{"mode": "run"}`` (default): `run_worker`, the library's own loop.
- ``{"mode": "bg", "backend": "asyncio" | "trio"}``: the worker runs its own event
  loop with a task group of its own around `serve_worker`, so that a handler can
  start a task outside its own scope (faults ``bg_exit0`` and ``bg_error``).

Every fault of `Die` lands at a named point (reliability.md section 4: fault
injection by configuration, not timing).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, NoReturn

import anyio
import anyio.abc

from isolated_workers import get_startup_data, run_worker, serve_worker
from tests.workers.rel_messages import (
    Blob,
    Die,
    Echo,
    Gather,
    Hold,
    Note,
    Ping,
    RelMessages,
    ReplyThenDie,
    Running,
    Seen,
    Stall,
)

#: The exit code of a worker after `ReplyThenDie`.
REPLY_THEN_DIE_CODE = 17

running = 0
seen = 0
stay_alive = False
background: anyio.abc.TaskGroup | None = None
# Made lazily: an anyio.Event needs the running event loop.
arrivals: dict[str, int] = {}
gathered: dict[str, anyio.Event] = {}


def append(path: str, text: str) -> None:
    """Append a line to ``path`` (synchronously: it must work in the ``finally``
    of a cancelled handler, where an await would raise at once)."""
    with open(path, "a") as file:
        file.write(f"{text}\n")


def count() -> None:
    global seen
    seen += 1


def ping(msg: Ping) -> int:
    count()
    return os.getpid()


async def echo(msg: Echo) -> int:
    count()
    return msg.x


async def hold(msg: Hold) -> None:
    global running
    count()
    running += 1
    try:
        if msg.marker:
            append(msg.marker, str(os.getpid()))
        await anyio.sleep_forever()
    finally:
        running -= 1
        if msg.marker:
            append(f"{msg.marker}.exited", str(os.getpid()))


def get_running(msg: Running) -> int:
    return running


def get_seen(msg: Seen) -> int:
    return seen


async def gather(msg: Gather) -> int:
    count()
    event = gathered.setdefault(msg.group, anyio.Event())
    arrivals[msg.group] = arrivals.get(msg.group, 0) + 1
    if arrivals[msg.group] >= msg.parties:
        event.set()
    await event.wait()
    return 2 * msg.x + 1


def blob(msg: Blob) -> int:
    count()
    return len(msg.data)


def stall(msg: Stall) -> str:
    count()
    Path(f"{msg.marker}.entered").write_text(str(os.getpid()))
    release = Path(f"{msg.marker}.release")
    deadline = time.monotonic() + 20
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


def note(msg: Note) -> None:
    count()


dying = False


def reply_then_die(msg: ReplyThenDie) -> bytes:
    global dying
    count()
    dying = True  # exit once the reply is written
    return b"x" * msg.size


def _install_reply_then_die() -> None:
    """Exit as soon as the reply of a `ReplyThenDie` is all written to the socket.

    A test-only hook into the worker's private connection: no public API runs
    code after a reply is written, and a timer would make the test depend on
    timing. The handler sets `dying`; its reply is the next frame written.
    """
    from isolated_workers._wire import _connection

    connection: Any = _connection.Connection
    original = connection._flush

    def flush(self: Any) -> None:
        original(self)
        if dying and not self.queued:
            os._exit(REPLY_THEN_DIE_CODE)

    connection._flush = flush


# --- faults -------------------------------------------------------------------


def connection_fds() -> list[int]:
    """The fds of this worker's connection to its host: the Unix sockets with a
    peer address (the event loops' own socketpairs have none)."""
    found: list[int] = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            with contextlib.suppress(OSError):
                if sock.family == socket.AF_UNIX and sock.getpeername():
                    found.append(fd)
        finally:
            sock.detach()
    return found


def _segfault() -> NoReturn:
    ctypes.string_at(0)
    raise AssertionError("unreachable")


def _system_exit0() -> NoReturn:
    raise SystemExit(0)


def _grandchild(marker: str) -> NoReturn:
    """Start ``sleep 60`` holding the connection socket, then exit with code 3."""
    child = subprocess.Popen(["sleep", "60"], pass_fds=connection_fds())
    Path(marker).write_text(str(child.pid))
    os._exit(3)


def _close_socket(marker: str) -> None:
    """Hang up on the host but stay alive (run_worker then returns)."""
    global stay_alive
    stay_alive = True
    for fd in connection_fds():
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()
    if marker:
        Path(marker).write_text(str(os.getpid()))


def _ignore_term_pause(marker: str) -> NoReturn:
    """Ignore SIGTERM and block in C (the event loop cannot run)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(marker).write_text(str(os.getpid()))
    while True:
        ctypes.CDLL(None).pause()


def _busy(marker: str) -> NoReturn:
    """Block the event loop in pure Python."""
    Path(marker).write_text(str(os.getpid()))
    while True:
        pass


async def _bg_exit0() -> None:
    await anyio.lowlevel.checkpoint()
    sys.exit(0)


async def _bg_error() -> None:
    await anyio.lowlevel.checkpoint()
    raise RuntimeError("a background task of the worker failed")


def _start_background(task: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if background is None:
        raise RuntimeError('this fault needs startup_data={"mode": "bg", ...}')
    background.start_soon(task)


FAULTS: dict[str, Callable[[str], object]] = {
    "exit42": lambda _: os._exit(42),
    "exit5": lambda _: os._exit(5),
    "segv": lambda _: _segfault(),
    "abort": lambda _: os.abort(),
    "system_exit0": lambda _: _system_exit0(),
    "grandchild": _grandchild,
    "close_socket": _close_socket,
    "ignore_term_pause": _ignore_term_pause,
    "busy": _busy,
    "bg_exit0": lambda _: _start_background(_bg_exit0),
    "bg_error": lambda _: _start_background(_bg_error),
}


async def die(msg: Die) -> None:
    count()
    FAULTS[msg.how](msg.marker)


HANDLERS: Mapping[type, Callable[[Any], Any]] = {
    Ping: ping,
    Echo: echo,
    Hold: hold,
    Running: get_running,
    Seen: get_seen,
    Gather: gather,
    Blob: blob,
    Stall: stall,
    Die: die,
    ReplyThenDie: reply_then_die,
    Note: note,
}


async def serve_with_background() -> None:
    global background
    async with anyio.create_task_group() as tg:
        background = tg
        await serve_worker(RelMessages, HANDLERS)
        tg.cancel_scope.cancel()


def main() -> None:
    _install_reply_then_die()
    startup = get_startup_data()
    config: dict[str, Any] = startup if isinstance(startup, dict) else {}
    if config.get("mode", "run") == "run":
        run_worker(RelMessages, HANDLERS)
    else:
        try:
            anyio.run(serve_with_background, backend=config["backend"])
        except BaseExceptionGroup as group:
            # The worker's own code: let a lone SystemExit end it as itself.
            if len(group.exceptions) == 1 and isinstance(
                group.exceptions[0], SystemExit
            ):
                raise group.exceptions[0] from None
            raise
    while stay_alive:  # after _close_socket: alive without a connection
        time.sleep(60)


if __name__ == "__main__":
    main()
