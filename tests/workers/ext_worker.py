"""A worker whose serializer and middleware the test picks with startup data:
``{"serializer": "json" | "msgpack" | "pickle" | "reversed", "middleware": bool}``.
"""

from __future__ import annotations

from typing import Any

import anyio

from isolated_workers import Middleware, get_startup_data, run_worker
from tests.workers.ext_messages import (
    Echo,
    Explode,
    Guarded,
    Hold,
    Messages,
    Note,
    Notes,
    Payload,
    Release,
    SeenMeta,
    Wait,
    doubling_middleware,
    make_serializer,
    request_meta,
    worker_middleware,
)

config: dict[str, Any] = get_startup_data() or {}
notes: list[int] = []


async def echo(message: Echo) -> Payload:
    return message.payload


async def seen_meta(message: SeenMeta) -> dict[str, str]:
    return request_meta.get() or {}


def guarded(message: Guarded) -> int:
    return message.value


async def explode(message: Explode) -> None:
    raise ValueError(message.text)


released: list[anyio.Event] = []


def _released() -> anyio.Event:
    if not released:
        released.append(anyio.Event())
    return released[0]


async def hold(message: Hold) -> int:
    await _released().wait()
    return message.value


def release(message: Release) -> None:
    _released().set()


async def wait(message: Wait) -> None:
    await anyio.sleep_forever()


def note(message: Note) -> None:
    notes.append(message.value)


def get_notes(message: Notes) -> list[int]:
    return notes


if __name__ == "__main__":
    middleware: list[Middleware] = []
    if config.get("middleware"):
        middleware = [worker_middleware, doubling_middleware]
    run_worker(
        Messages,
        {
            Echo: echo,
            SeenMeta: seen_meta,
            Guarded: guarded,
            Explode: explode,
            Wait: wait,
            Hold: hold,
            Release: release,
            Note: note,
            Notes: get_notes,
        },
        middleware=middleware,
        serializer=make_serializer(config.get("serializer", "json")),
    )
