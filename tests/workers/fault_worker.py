"""The fault worker: it serves the fault contract (``fault_messages.py``), the
plain handlers with the fault ones.

Startup data (optional, a dict) chooses how it serves:

- ``{"mode": "run"}`` (default): `run_worker`, the library's own loop.
- ``{"mode": "bg", "backend": "asyncio" | "trio"}``: the worker runs its own event
  loop with a task group of its own around `serve_worker`, so that a handler can
  start a task outside its own scope (faults ``bg_exit0`` and ``bg_error``).
- ``"worker_max_frame_size"``: passed on as ``max_frame_size``.

Environment variables set faults at start-up:

- ``FAULT_ADDRESS_SPACE_HEADROOM_MIB``: limit the address space to what the
  worker uses, plus this much.
- ``FAULT_REFUSE_START_IF``: exit before the handshake if this file exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NoReturn

import anyio
import anyio.abc
import anyio.lowlevel

from isolated_workers import get_startup_data, run_worker, serve_worker
from isolated_workers._util import DEFAULT_MAX_FRAME_SIZE
from tests.workers.echo_handlers import HANDLERS as PLAIN_HANDLERS
from tests.workers.echo_handlers import mark
from tests.workers.fault_messages import (
    Allocate,
    Carry,
    Die,
    DieSync,
    Faults,
    Gated,
    Nest,
    Pair,
    ReplyThenDie,
    Say,
    Seen,
    Tree,
    Typed,
    Unsendable,
)
from tests.workers.messages import Count, Running

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

#: The exit code of a worker after `ReplyThenDie`.
REPLY_THEN_DIE_CODE = 17

seen = 0
stay_alive = False
background: anyio.abc.TaskGroup | None = None


def counted(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``handler``, counting its calls for `Seen`; async if it was (the server
    runs sync and async handlers differently)."""

    def count() -> None:
        global seen
        seen += 1

    if inspect.iscoroutinefunction(handler):

        async def counted_async(msg: Any) -> Any:
            count()
            return await handler(msg)

        return counted_async

    def counted_sync(msg: Any) -> Any:
        count()
        return handler(msg)

    return counted_sync


def get_seen(msg: Seen) -> int:
    return seen


async def gated(msg: Gated) -> int:
    if not os.path.exists(msg.gate):
        mark(msg.marker)
        # The test opens the gate from another process: poll the file.
        while not os.path.exists(msg.gate):
            await anyio.sleep(0.01)
    return 2 * msg.x


def allocate(msg: Allocate) -> int:
    if not msg.marker:
        return len(bytearray(msg.mib * 1024 * 1024))
    chunks = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))  # zeroed: the pages are touched
        if len(chunks) == 1:
            mark(msg.marker)
        if len(chunks) * 16 >= msg.mib:
            time.sleep(3600)


dying = False


def reply_then_die(msg: ReplyThenDie) -> bytes:
    global dying
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


# --- bad input ----------------------------------------------------------------


async def say(msg: Say) -> str:
    return msg.text


def typed(msg: Typed) -> Any:
    if msg.mode == "wrong":
        return Pair(str(msg.x), msg.y)  # type: ignore[arg-type]
    if msg.mode == "extra":
        return {"x": msg.x, "y": msg.y, "z": 0}
    return Pair(msg.x, msg.y)


def carry(msg: Carry) -> int:
    return len(msg.payload)


def nest(msg: Nest) -> list[Any]:
    value: list[Any] = []
    for _ in range(msg.depth):
        value = [value]
    return value


def tree(msg: Tree) -> int:
    depth, node = 1, msg.root
    while node.children:
        depth, node = depth + 1, node.children[0]
    return depth


def unsendable(msg: Unsendable) -> Any:
    return {1, 2, 3}


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
    """Start ``sleep 60`` holding the connection socket, write its pid to
    ``marker``, then exit with code 3."""
    child = subprocess.Popen(["sleep", "60"], pass_fds=connection_fds())
    with open(marker, "a") as file:
        file.write(f"{child.pid}\n")
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
        mark(marker)


def _ignore_term_pause(marker: str) -> NoReturn:
    """Ignore SIGTERM and block in C (the event loop cannot run)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    mark(marker)
    while True:
        ctypes.CDLL(None).pause()


def _term_exits_sleeping(marker: str) -> None:
    """Exit with code 7 on SIGTERM, by a handler of the worker's own that
    raises SystemExit in the middle of this sync handler's sleep."""

    def on_term(signum: int, frame: object) -> NoReturn:
        sys.exit(7)

    signal.signal(signal.SIGTERM, on_term)
    mark(marker)
    time.sleep(60)


def _busy(marker: str) -> NoReturn:
    """Block the event loop in pure Python."""
    mark(marker)
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
    "sigkill": lambda _: os.kill(os.getpid(), signal.SIGKILL),
    "exit42": lambda _: os._exit(42),
    "exit5": lambda _: os._exit(5),
    "segv": lambda _: _segfault(),
    "abort": lambda _: os.abort(),
    "system_exit0": lambda _: _system_exit0(),
    "grandchild": _grandchild,
    "close_socket": _close_socket,
    "ignore_term_pause": _ignore_term_pause,
    "busy": _busy,
    "term_exits_sleeping": _term_exits_sleeping,
    "bg_exit0": lambda _: _start_background(_bg_exit0),
    "bg_error": lambda _: _start_background(_bg_error),
}


async def die(msg: Die) -> None:
    FAULTS[msg.how](msg.marker)


def die_sync(msg: DieSync) -> None:
    FAULTS[msg.how](msg.marker)


# `Running` and `Seen` report on the others, and a stream is never counted.
HANDLERS: Mapping[type, Callable[[Any], Any]] = {
    **{
        cls: handler if cls in (Running, Count) else counted(handler)
        for cls, handler in PLAIN_HANDLERS.items()
    },
    Seen: get_seen,
    Gated: counted(gated),
    Die: counted(die),
    DieSync: counted(die_sync),
    ReplyThenDie: counted(reply_then_die),
    Allocate: counted(allocate),
    Say: counted(say),
    Typed: counted(typed),
    Carry: counted(carry),
    Nest: counted(nest),
    Tree: counted(tree),
    Unsendable: counted(unsendable),
}


async def serve_with_background(max_frame_size: int) -> None:
    global background
    async with anyio.create_task_group() as tg:
        background = tg
        await serve_worker(Faults, HANDLERS, max_frame_size=max_frame_size)
        tg.cancel_scope.cancel()


def main() -> None:
    _install_reply_then_die()
    startup = get_startup_data()
    config: dict[str, Any] = startup if isinstance(startup, dict) else {}
    limit: int = config.get("worker_max_frame_size") or DEFAULT_MAX_FRAME_SIZE
    if config.get("mode", "run") == "run":
        run_worker(Faults, HANDLERS, max_frame_size=limit)
    else:
        try:
            anyio.run(serve_with_background, limit, backend=config["backend"])
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
