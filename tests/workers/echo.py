"""A well-behaved worker used by most tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from isolated_workers import get_startup_data, run_worker
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

startup = get_startup_data()
remembered: list[int] = []


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data)


def add(msg: Add) -> int:
    return msg.a + msg.b


def fail(msg: Fail) -> None:
    if msg.kind == "zero":
        1 / 0  # noqa: B018
    if msg.kind == "oserror":
        raise FileNotFoundError(2, msg.text)
    raise RuntimeError(msg.text)


async def sleep(msg: Sleep) -> str:
    try:
        await anyio.sleep(msg.seconds)
    finally:
        if msg.marker:
            # Blocking on purpose: an await here would not run once cancelled.
            Path(msg.marker).write_text(f"{os.getpid()}")  # noqa: ASYNC240
    return "slept"


def get_startup(msg: GetStartup) -> dict[str, Any]:
    return {"startup": startup}


def remember(msg: Remember) -> None:
    remembered.append(msg.value)


def recall(msg: Recall) -> list[int]:
    return remembered


if __name__ == "__main__":
    run_worker(
        Messages,
        {
            Echo: echo,
            Add: add,
            Fail: fail,
            Sleep: sleep,
            GetStartup: get_startup,
            Remember: remember,
            Recall: recall,
        },
    )
