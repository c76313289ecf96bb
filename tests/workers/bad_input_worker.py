"""The real worker of test_bad_input.py, serving `bad_input_messages.Messages`.

Startup data, when it is a dict, may hold ``worker_max_frame_size`` (passed to
`run_worker`).
"""

from __future__ import annotations

import os
from typing import Any, cast

import anyio

from isolated_workers import get_startup_data, run_worker
from isolated_workers._util import DEFAULT_MAX_FRAME_SIZE
from tests.workers.bad_input_messages import (
    Carry,
    GetPid,
    Messages,
    Nest,
    Pair,
    Release,
    Say,
    Tree,
    Typed,
    Unsendable,
    Wait,
)

startup = get_startup_data()
# Created lazily: an anyio.Event needs the running event loop.
gates: dict[str, anyio.Event] = {}


async def say(msg: Say) -> str:
    return msg.text


async def wait(msg: Wait) -> str:
    await gates.setdefault(msg.key, anyio.Event()).wait()
    return msg.key


def release(msg: Release) -> None:
    gates.setdefault(msg.key, anyio.Event()).set()


def typed(msg: Typed) -> Any:
    if msg.mode == "wrong":
        return Pair(str(msg.x), msg.y)  # type: ignore[arg-type]
    if msg.mode == "extra":
        return {"x": msg.x, "y": msg.y, "z": 0}
    return Pair(msg.x, msg.y)


def carry(msg: Carry) -> int:
    return len(msg.payload)


def nest(msg: Nest) -> list[Any]:
    value: list[Any] = []
    for _ in range(msg.depth):
        value = [value]
    return value


def tree(msg: Tree) -> int:
    depth, node = 1, msg.root
    while node.children:
        depth, node = depth + 1, node.children[0]
    return depth


def unsendable(msg: Unsendable) -> Any:
    return {1, 2, 3}


def get_pid(msg: GetPid) -> int:
    return os.getpid()


if __name__ == "__main__":
    config = cast("dict[str, Any]", startup) if isinstance(startup, dict) else {}
    limit: int = config.get("worker_max_frame_size") or DEFAULT_MAX_FRAME_SIZE
    run_worker(
        Messages,
        {
            Say: say,
            Wait: wait,
            Release: release,
            Typed: typed,
            Carry: carry,
            Nest: nest,
            Tree: tree,
            Unsendable: unsendable,
            GetPid: get_pid,
        },
        max_frame_size=limit,
    )
