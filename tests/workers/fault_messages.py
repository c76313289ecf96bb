"""The fault contract: the plain one, and what makes the fault worker fail.

`Faults` holds every message of `tests.workers.messages.Messages`, served by the
same handlers, and the messages below, by which the fault worker
(``tests/workers/fault_worker.py``) dies, misbehaves or reports on itself at a
named point (reliability.md section 4: fault injection by configuration, not
timing), or takes the bad input of test_bad_input.py. Markers and release files
are as in the plain contract.

`RawFaults` is apart: the requests of the fake worker ``bad_input_raw_worker``,
which answers them with frames it builds by hand, malformed on purpose. No real
worker could answer them (the tx of a request, the frames received, a bad
frame), so none serves them.
"""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import Request, StreamRequest, define_messages
from tests.workers.messages import Messages


@attrs.frozen
class Seen(Request[int]):
    """Sync handler: how many requests and notifications reached a handler,
    `Seen` and `Running` aside."""


@attrs.frozen
class Gated(Request[int]):
    """Async handler: answers ``2 * x`` once the release file ``gate`` exists;
    marks ``marker`` first if it does not yet (a crash-then-retry handler)."""

    x: int
    gate: str
    marker: str


@attrs.frozen
class Die(Request[None]):
    """Async handler: fails in the way ``how`` names (see fault_worker.FAULTS),
    marking ``marker`` where the fault needs to tell the test something."""

    how: str
    marker: str = ""


@attrs.frozen
class DieSync(Request[None]):
    """Sync handler: fails as `Die` does, from the worker's read callback
    rather than from a task."""

    how: str
    marker: str = ""


@attrs.frozen
class ReplyThenDie(Request[bytes]):
    """Sync handler: answers ``size`` bytes, then the worker exits with code 17
    once the reply is written."""

    size: int


@attrs.frozen
class Allocate(Request[int]):
    """Sync handler: allocates and touches ``mib`` MiB in one piece; answers its
    size. With ``marker``, allocates in 16 MiB steps instead, marking ``marker``
    after the first, and never answers: a worker growing until it is killed."""

    mib: int
    marker: str = ""


# --- bad input -----------------------------------------------------------------


@attrs.frozen
class Say(Request[str]):
    """Async handler: answers ``text``."""

    text: str


@attrs.frozen
class Pair:
    x: int
    y: str


@attrs.frozen
class Typed(Request[Pair]):
    """Sync handler: ``Pair(x, y)``; ``mode="wrong"`` answers ``x`` as text,
    ``mode="extra"`` adds a field ``z``."""

    x: int
    y: str
    mode: str = "ok"


@attrs.frozen
class Carry(Request[int]):
    """Sync handler: the length of ``payload``."""

    payload: list[Any]


@attrs.frozen
class Nest(Request[list[Any]]):
    """Sync handler: a list nested ``depth`` deep."""

    depth: int


@attrs.frozen
class Node:
    children: list[Node]


@attrs.frozen
class Tree(Request[int]):
    """Sync handler: the depth of ``root``."""

    root: Node


@attrs.frozen
class Unsendable(Request[list[int]]):
    """Sync handler: answers a set, which JSON cannot carry."""


Faults = define_messages(
    *Messages,
    Seen,
    Gated,
    Die,
    DieSync,
    ReplyThenDie,
    Allocate,
    Say,
    Typed,
    Carry,
    Nest,
    Tree,
    Unsendable,
)

# --- answered by the fake worker only ----------------------------------------


@attrs.frozen
class Act(Request[str]):
    """Answered as ``action`` says (see bad_input_raw_worker)."""

    action: str
    text: str = ""
    size: int = 0


@attrs.frozen
class Grow(Request[Node]):
    """Answered with a `Node` chain ``depth`` deep."""

    depth: int


@attrs.frozen
class Tx(Request[int]):
    """Answered with this request's tx id."""


@attrs.frozen
class Frames(Request[int]):
    """Answered with how many frames the fake worker has received."""


@attrs.frozen
class Flush(Request[str]):
    """Answered after the fake worker answers the requests it held."""


@attrs.frozen
class Flood(StreamRequest[int]):
    """Answered with ``count`` items at once, whatever credit the host grants,
    then the end of the stream."""

    count: int


RawFaults = define_messages(Act, Grow, Tx, Frames, Flush, Flood)
