"""Messages of the fault-injection worker (tests/workers/fault_worker.py)."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class Ping(Request[int]):
    """Answer with the worker's pid."""


@attrs.frozen
class Block(Request[None]):
    """Write ``marker`` (with a running count) on entry, then block forever:
    ``sync`` in a blocking loop the event loop cannot interrupt."""

    marker: str
    sync: bool = False


@attrs.frozen
class Work(Request[int]):
    """Return ``2 * x`` if the file ``gate`` exists, else note entry in
    ``marker`` and block: a crash-then-retry handler."""

    x: int
    gate: str
    marker: str


@attrs.frozen
class Crash(Request[None]):
    """Die in the named way (see fault_worker.CRASHES)."""

    how: str


@attrs.frozen
class Say(Request[None]):
    """Write ``stdout`` and ``stderr`` to the worker's own streams, flushed."""

    stdout: str = ""
    stderr: str = ""


@attrs.frozen
class Blob(Request[int]):
    """Answer with the length of ``data``."""

    data: bytes


@attrs.frozen
class Allocate(Request[int]):
    """Allocate and touch ``mib`` MiB in one piece; answer with its size.

    With ``marker``, allocate in 16 MiB steps instead, noting the first in
    ``marker``, and never answer: a worker growing until it is killed."""

    mib: int
    marker: str = ""


Faults = define_messages(Ping, Block, Work, Crash, Say, Blob, Allocate)
