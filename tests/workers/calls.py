"""Module-level functions for `run_sync` tests: a worker imports them by name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs


@attrs.frozen
class Point:
    x: int
    y: int


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def shift(point: Point, *by: int) -> Point:
    """Arguments and result are structured by these annotations."""
    return Point(point.x + sum(by), point.y)


def fail(message: str) -> None:
    raise ValueError(message)


def block(marker: str) -> None:
    """Write ``marker``, then sleep far longer than any test waits."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(60)


async def not_sync() -> None:
    """run_sync refuses async functions."""


def decorated(function: object) -> object:
    return lambda: function


@decorated
def replaced() -> None:
    """The name now holds the decorator's lambda, not this function."""
