"""The contract and handlers of the fuzzed worker (tests/test_fuzz.py, C16).

Field types cover what the codec structures (scalars, bytes, enum, literal,
list, dict, tuple, nested attrs, optional). `Hold` and `Release` make an async
handler stay in flight for as long as a test needs, without timing: a `Hold`
answers once a `Release` with ``upto >= until`` has arrived.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Literal

import anyio
import attrs

from isolated_workers import Notification, Request, define_messages

#: The worker's max_frame_size: small enough that fuzzed headers often exceed it.
MAX_FRAME_SIZE = 64 * 1024


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = 3


@attrs.frozen
class Point:
    x: int
    y: float


@attrs.frozen
class Mirror(Request["Mirror"]):
    """Answered (async) with itself."""

    text: str
    blob: bytes
    count: int
    ratio: float
    flag: bool
    color: Color
    mode: Literal["a", "b"]
    tags: list[str]
    scores: dict[str, int]
    point: Point | None = None
    pair: tuple[int, str] = (0, "")


@attrs.frozen
class Add(Request[int]):
    a: int
    b: int


@attrs.frozen
class Divide(Request[float]):
    """``a / b``; ``b == 0`` raises `ZeroDivisionError` in the handler."""

    a: float
    b: float


@attrs.frozen
class Count(Request[int]):
    """How many `Note` notifications this handler set has received."""


@attrs.frozen
class Hold(Request[int]):
    """Answer ``value`` (async) once released up to ``until``."""

    value: int
    until: int


@attrs.frozen
class Note(Notification):
    value: int


@attrs.frozen
class Release(Notification):
    upto: int


Messages = define_messages(Mirror, Add, Divide, Count, Hold, Note, Release)


def make_handlers() -> dict[type, Callable[[Any], Any]]:
    """A fresh handler set, with its own note count and release level."""
    notes: list[int] = []
    released = 0
    changed: anyio.Event | None = None

    async def mirror(msg: Mirror) -> Mirror:
        return msg

    def add(msg: Add) -> int:
        return msg.a + msg.b

    def divide(msg: Divide) -> float:
        return msg.a / msg.b

    def count(msg: Count) -> int:
        return len(notes)

    async def hold(msg: Hold) -> int:
        nonlocal changed
        while released < msg.until:
            if changed is None:
                changed = anyio.Event()
            await changed.wait()
        return msg.value

    def note(msg: Note) -> None:
        notes.append(msg.value)

    def release(msg: Release) -> None:
        nonlocal released, changed
        released = max(released, msg.upto)
        if changed is not None:
            changed.set()
            changed = None

    return {
        Mirror: mirror,
        Add: add,
        Divide: divide,
        Count: count,
        Hold: hold,
        Note: note,
        Release: release,
    }
