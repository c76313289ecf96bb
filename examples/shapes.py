"""Functions that examples/functions.py runs in workers."""

from __future__ import annotations

import time

import attrs


@attrs.frozen
class Box:
    width: int
    height: int


def grow(box: Box, by: int) -> Box:
    return Box(box.width + by, box.height + by)


def slow_area(box: Box, seconds: float = 10.0) -> int:
    time.sleep(seconds)  # stands for work that cannot be interrupted
    return box.width * box.height
