"""Tasks for async handlers, started with the backend's own primitive.

A worker starts a task per request to an async handler. An AnyIO task group
spends about three times what the backend itself does on each (measured on
asyncio and Trio alike), so the server spawns them with Trio's nursery or
asyncio's `Task` directly. On Python 3.12+, an asyncio task starts eagerly: a
handler that never suspends runs to its end at once, inside the read callback,
and its reply leaves with the others of that read; only a handler that
suspends is scheduled as a task.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .._util import current_backend, raise_single

#: Start ``function(*args)`` as a task of the server.
Spawn = Callable[..., None]


@asynccontextmanager
async def handler_tasks(on_failure: Callable[[], None]) -> AsyncGenerator[Spawn]:
    """Yield a spawn function; on exit, cancel the tasks still running and wait
    for them. A task that raises ends serving: ``on_failure`` is called, and the
    exception comes out of this block."""
    if current_backend() == "trio":
        import trio

        try:
            async with trio.open_nursery() as nursery:
                try:
                    yield nursery.start_soon
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # a SystemExit keeps its identity
            raise_single(group)
    else:
        async with _asyncio_tasks(on_failure) as spawn:
            yield spawn


@asynccontextmanager
async def _asyncio_tasks(on_failure: Callable[[], None]) -> AsyncGenerator[Spawn]:
    import asyncio

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()  # asyncio itself keeps weak references
    failures: list[BaseException] = []

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append(exc)
            on_failure()

    def spawn(function: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        coro = function(*args)
        if sys.version_info >= (3, 12):
            task = asyncio.Task(coro, loop=loop, eager_start=True)
        else:
            task = loop.create_task(coro)
        if task.done():  # it ran to its end without suspending
            done(task)
        else:
            tasks.add(task)
            task.add_done_callback(done)

    try:
        yield spawn
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)
    if failures:
        raise failures[0]
