"""Message contracts of the bad-input tests (tests/test_bad_input.py).

`Messages` is served by the real worker ``bad_input_worker``; `RawMessages` by
the fake worker ``bad_input_raw_worker``, which answers with raw frames.
"""

from __future__ import annotations

from typing import Any

import attrs

from isolated_workers import Notification, Request, define_messages

# --- served by bad_input_worker -------------------------------------------------


@attrs.frozen
class Say(Request[str]):
    """Async handler: returns ``text``."""

    text: str


@attrs.frozen
class Wait(Request[str]):
    """Async handler: waits until `Release` names ``key``, returns ``key``."""

    key: str


@attrs.frozen
class Release(Notification):
    """Sync handler: lets the `Wait` handlers of ``key`` return."""

    key: str


@attrs.frozen
class Pair:
    x: int
    y: str


@attrs.frozen
class Typed(Request[Pair]):
    """Sync handler: ``Pair(x, y)``; ``mode="wrong"`` returns ``x`` as text,
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
    """Sync handler: returns a set, which JSON cannot carry."""


@attrs.frozen
class GetPid(Request[int]):
    """Sync handler: the worker's pid."""


Messages = define_messages(
    Say, Wait, Release, Typed, Carry, Nest, Tree, Unsendable, GetPid
)

# --- served by bad_input_raw_worker -------------------------------------------------


@attrs.frozen
class Act(Request[str]):
    """Answered by the fake worker as ``action`` says (see bad_input_raw_worker)."""

    action: str
    text: str = ""
    size: int = 0


@attrs.frozen
class Grow(Request[Node]):
    """Answered by the fake worker with a `Node` chain ``depth`` deep."""

    depth: int


@attrs.frozen
class Tx(Request[int]):
    """Answered by the fake worker with this request's tx id."""


@attrs.frozen
class Frames(Request[int]):
    """Answered by the fake worker with how many frames it has received."""


@attrs.frozen
class Flush(Request[str]):
    """Answered by the fake worker after it answers the requests it held."""


RawMessages = define_messages(Act, Grow, Tx, Frames, Flush)
