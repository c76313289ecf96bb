"""The contract of ``tests/workers/tr_worker.py``, used by test_transports.py."""

from __future__ import annotations

import attrs

from isolated_workers import Notification, Request, define_messages

#: What the worker prints at import time, before its handshake.
IMPORT_PRINT = "tr_worker: print() at import time"


@attrs.frozen
class Echoed:
    value: int
    data: bytes


@attrs.frozen
class Echo(Request[Echoed]):
    """Async handler: returns ``value`` and ``data`` unchanged."""

    value: int
    data: bytes = b""


@attrs.frozen
class Note(Notification):
    """Sync handler: appends ``value`` to the worker's notes."""

    value: int


@attrs.frozen
class Notes(Request[list[int]]):
    """Sync handler: the values noted so far."""


@attrs.frozen
class Fail(Request[None]):
    """Sync handler: raises ``ValueError(text)``."""

    text: str


@attrs.frozen
class Block(Request[None]):
    """Async handler: writes ``<marker>.entered``, waits forever; its ``finally``
    writes ``<marker>.exited``."""

    marker: str


@attrs.frozen
class Speak(Request[int]):
    """Sync handler: ``print(text)``, ``os.write(1, raw)``, then ``flood`` bytes
    of ``o`` lines to stdout and of ``e`` lines to stderr followed by
    ``print(end)``; returns the number of bytes written."""

    text: str = ""
    raw: str = ""
    flood: int = 0
    end: str = ""


@attrs.frozen
class View:
    """What the worker process sees of itself."""

    #: ``__name__``, ``__file__`` of the worker's main module, and sys.argv.
    name: str
    file: str
    argv: list[str]
    path0: str
    #: ``tr_sibling.VALUE`` if the module imports by its bare name, else None.
    sibling: str | None
    #: "pipe" or "socket": the worker's channel to its host.
    transport: str
    #: The channel's fds: (read, write) for pipes, (socket,) for a socket.
    channel_fds: list[int]
    channel_inheritable: list[bool]
    #: The bootstrap pipe's fd.
    pipe_fd: int
    #: ``/proc/self/fd``: fd number -> link target.
    fds: dict[str, str]
    #: ``sys.stdin.read()`` and ``os.read(0, 16)``.
    stdin: str
    stdin_raw: bytes
    #: The event loop: "asyncio", "trio" or "uvloop".
    loop: str


@attrs.frozen
class Look(Request[View]):
    """Sync handler: the worker's `View`."""


Messages = define_messages(Echo, Note, Notes, Fail, Block, Speak, Look)
