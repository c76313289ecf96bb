"""`handler_tasks`: the worker's tasks for async handlers, on each backend's
own primitive."""

from __future__ import annotations

import sys

import anyio
import anyio.lowlevel
import pytest

from isolated_workers._worker._tasks import handler_tasks

pytestmark = [pytest.mark.anyio, pytest.mark.pure]


async def test_tasks_run_and_the_block_waits_for_none_of_them_to_leak() -> None:
    """A handler that finishes at once and one that suspends both run; leaving
    the block cancels the one still waiting and waits for it to end."""
    ran: list[str] = []
    waiting = anyio.Event()
    cancelled = anyio.Event()

    async def at_once() -> None:
        ran.append("at once")

    async def suspends() -> None:
        try:
            waiting.set()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(5):
        async with handler_tasks(lambda: None) as spawn:
            spawn(at_once)
            spawn(suspends)
            await waiting.wait()
            assert ran == ["at once"]
        assert cancelled.is_set()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks: Python 3.12+")
async def test_on_asyncio_a_handler_that_never_suspends_runs_at_once(
    anyio_backend_name: str,
) -> None:
    """No scheduling pass: the handler has run when `spawn` returns."""
    if anyio_backend_name != "asyncio":
        pytest.skip("Trio has no eager tasks")
    ran: list[int] = []

    async def handler(value: int) -> None:
        ran.append(value)

    async with handler_tasks(lambda: None) as spawn:
        spawn(handler, 1)
        assert ran == [1]


async def test_a_task_that_raises_ends_serving_with_its_exception() -> None:
    """The exception is not lost: serving is told to stop, and it comes out of
    the block."""
    stopped = anyio.Event()

    async def broken() -> None:
        await anyio.lowlevel.checkpoint()
        raise LookupError("a bug")

    async def serve() -> None:
        async with handler_tasks(stopped.set) as spawn:
            spawn(broken)
            await stopped.wait()  # on Trio, the nursery cancels this instead

    with anyio.fail_after(5), pytest.raises((LookupError, ExceptionGroup)) as info:
        await serve()
    error = info.value
    if isinstance(error, ExceptionGroup):
        [error] = error.exceptions
    assert isinstance(error, LookupError)
