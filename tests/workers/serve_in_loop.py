"""A worker that runs its own event loop and serves inside it with serve_worker."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import anyio

from isolated_workers import serve_worker
from tests.workers.messages import (
    Add,
    Echo,
    Echoed,
    Fail,
    GetStartup,
    Messages,
    Recall,
    Remember,
    Sleep,
)


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data)


def add(msg: Add) -> int:
    return msg.a + msg.b


def fail(msg: Fail) -> None:
    raise RuntimeError(msg.text)


async def sleep(msg: Sleep) -> str:
    await anyio.sleep(msg.seconds)
    return "slept"


async def which_loop(msg: GetStartup) -> dict[str, object]:
    return {"loop": "trio" if "trio" in sys.modules else "asyncio"}


def ignore(msg: Remember) -> None:
    pass


def recall(msg: Recall) -> list[int]:
    return []


async def main() -> None:
    handlers: dict[type, Callable[[Any], Any]] = {
        Echo: echo,
        Add: add,
        Fail: fail,
        Sleep: sleep,
        GetStartup: which_loop,
        Remember: ignore,
        Recall: recall,
    }
    await serve_worker(Messages, handlers)


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1])
