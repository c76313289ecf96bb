"""The fault contract: the plain one, and what makes the fault worker fail.

`Faults` holds every message of `tests.workers.messages.Messages`, served by the
same handlers, and the messages below, by which the fault worker
(``tests/workers/fault_worker.py``) dies, misbehaves or reports on itself at a
named point (reliability.md section 4: fault injection by configuration, not
timing). Markers and release files are as in the plain contract.
"""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages
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


Faults = define_messages(*Messages, Seen, Gated, Die, ReplyThenDie, Allocate)
