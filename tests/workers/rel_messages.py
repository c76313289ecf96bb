"""Messages of the reliability worker (tests/workers/rel_worker.py).

Markers are files the worker writes so that a test can see, from another
process, that a handler got somewhere (reliability.md section 4).
"""

from __future__ import annotations

import attrs

from isolated_workers import Notification, Request, define_messages


@attrs.frozen
class Ping(Request[int]):
    """Answer with the worker's pid."""


@attrs.frozen
class Echo(Request[int]):
    """Answer with ``x``."""

    x: int


@attrs.frozen
class Hold(Request[None]):
    """Block forever (async). On entry append the pid to ``marker``; when
    cancelled, append it to ``<marker>.exited``. Counted by `Running`."""

    marker: str = ""


@attrs.frozen
class Running(Request[int]):
    """How many `Hold` handlers are running now."""


@attrs.frozen
class Seen(Request[int]):
    """How many requests and notifications reached a handler (this one aside)."""


@attrs.frozen
class Gather(Request[int]):
    """Wait until ``parties`` `Gather` handlers of ``group`` have entered, then
    answer ``2 * x + 1``."""

    x: int
    parties: int
    group: str = "g"


@attrs.frozen
class Blob(Request[int]):
    """Answer with ``len(data)`` (sync)."""

    data: bytes


@attrs.frozen
class Stall(Request[str]):
    """Block the event loop (sync): write ``<marker>.entered``, wait until
    ``<marker>.release`` exists (20 s at most), answer ``"released"``."""

    marker: str


@attrs.frozen
class Die(Request[None]):
    """Fail in the named way; see rel_worker.FAULTS. ``marker`` is written
    where the fault needs to tell the test something."""

    how: str
    marker: str = ""


@attrs.frozen
class ReplyThenDie(Request[bytes]):
    """Answer ``size`` bytes, then exit with code 17 once the reply is written."""

    size: int


@attrs.frozen
class Note(Notification):
    """A notification; counted by `Seen`."""

    value: int


RelMessages = define_messages(
    Ping, Echo, Hold, Running, Seen, Gather, Blob, Stall, Die, ReplyThenDie, Note
)
