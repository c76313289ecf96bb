"""The worker of test_transports.py; runs as a module or as a script.

It prints before its handshake and reports what it sees of itself (`Look`).
As a script it needs ``PYTHONPATH`` to hold the repository (for
``tests.workers``); `tr_sibling` then imports only through ``sys.path[0]``.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from pathlib import Path

import anyio

from isolated_workers import get_startup_data, run_worker
from isolated_workers._util import current_backend
from isolated_workers._worker._session import connect
from tests._leaks import open_fds
from tests.workers.tr_messages import (
    IMPORT_PRINT,
    Block,
    Echo,
    Echoed,
    Fail,
    Look,
    Messages,
    Note,
    Notes,
    Speak,
    View,
)

print(IMPORT_PRINT, flush=True)  # before the handshake
get_startup_data()  # performs the handshake
SESSION = connect()  # made by get_startup_data above
CHANNEL = SESSION.channel
PIPE_FD = SESSION.pipe_fd
notes: list[int] = []


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data)


def note(msg: Note) -> None:
    notes.append(msg.value)


def get_notes(msg: Notes) -> list[int]:
    return notes


def fail(msg: Fail) -> None:
    raise ValueError(msg.text)


async def block(msg: Block) -> None:
    Path(f"{msg.marker}.entered").write_text("")
    try:
        await anyio.sleep_forever()
    finally:
        Path(f"{msg.marker}.exited").write_text("")  # sync: we are cancelled


def speak(msg: Speak) -> int:
    written = 0
    if msg.text:
        print(msg.text, flush=True)
        written += len(msg.text) + 1
    if msg.raw:
        written += os.write(1, msg.raw.encode())
    if msg.flood:
        for stream, char in ((sys.stdout, "o"), (sys.stderr, "e")):
            stream.write((char * 1023 + "\n") * (msg.flood // 1024))
            stream.flush()
            written += msg.flood // 1024 * 1024
    if msg.end:
        print(msg.end, flush=True)
        written += len(msg.end) + 1
    return written


def _sibling() -> str | None:
    try:
        value: str = importlib.import_module("tr_sibling").VALUE
    except ModuleNotFoundError:
        return None
    return value


def _fds() -> dict[str, str]:
    return {str(fd): target for fd, target in open_fds()}


def look(msg: Look) -> View:
    if isinstance(CHANNEL, socket.socket):
        transport, channel = "socket", [CHANNEL.fileno()]
    else:
        transport, channel = "pipe", [CHANNEL.read_fd, CHANNEL.write_fd]
    return View(
        name=__name__,
        file=__file__,
        argv=sys.argv,
        path0=sys.path[0],
        sibling=_sibling(),
        transport=transport,
        channel_fds=channel,
        channel_inheritable=[os.get_inheritable(fd) for fd in channel],
        pipe_fd=PIPE_FD,
        fds=_fds(),
        stdin=sys.stdin.read(),
        stdin_raw=os.read(0, 16),
        loop=current_backend(uvloop=True),
    )


if __name__ == "__main__":
    run_worker(
        Messages,
        {
            Echo: echo,
            Note: note,
            Notes: get_notes,
            Fail: fail,
            Block: block,
            Speak: speak,
            Look: look,
        },
    )
