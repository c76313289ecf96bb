"""Events: a worker's handler `emit`s, the host's ``on_event`` callback gets it.

Real worker processes on both worker backends, hosts on both backends.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from isolated_workers import Event, RemoteError, emit, open_worker
from tests._util import GUARD
from tests.workers.messages import Add, Messages, Progress, Unregistered, Work

pytestmark = pytest.mark.anyio


def echo_worker(worker_backend: str, **options: Any) -> Any:
    return open_worker(
        "tests.workers.echo", messages=Messages, backend=worker_backend, **options
    )


async def test_sync_callbacks_get_every_event_in_order(worker_backend: str) -> None:
    seen: list[Progress] = []
    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend, on_event={Progress: seen.append}) as w:
            assert await w.send(Work(5)) == 5
    assert seen == [Progress(done, 5) for done in range(1, 6)]


async def test_async_callbacks_run_as_tasks(worker_backend: str) -> None:
    got: list[int] = []
    all_in = anyio.Event()

    async def on_progress(event: Progress) -> None:
        await anyio.lowlevel.checkpoint()
        got.append(event.done)
        if len(got) == event.total:
            all_in.set()

    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend, on_event={Progress: on_progress}) as w:
            assert await w.send(Work(3)) == 3
            await all_in.wait()
    assert sorted(got) == [1, 2, 3]


async def test_a_failing_callback_costs_only_its_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: Progress) -> None:
        raise LookupError(f"no {event.done}")

    async def broken_async(event: Progress) -> None:
        raise LookupError("async")

    for callback in (broken, broken_async):
        caplog.clear()
        with anyio.fail_after(GUARD), caplog.at_level(logging.ERROR):
            async with echo_worker("asyncio", on_event={Progress: callback}) as w:
                assert await w.send(Work(2)) == 2
                assert await w.send(Add(1, 1)) == 2
        assert "the on_event callback of 'Progress' raised" in caplog.text


async def test_events_without_a_callback_are_dropped() -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker("asyncio") as w:
            assert await w.send(Work(3)) == 3


async def test_an_event_not_in_the_registry_fails_the_handler() -> None:
    """The worker refuses to emit it; the request fails with that error."""
    seen: list[Progress] = []
    with anyio.fail_after(GUARD):
        async with echo_worker("asyncio", on_event={Progress: seen.append}) as w:
            with pytest.raises(RemoteError, match="Unregistered is not an Event"):
                await w.send(Work(1, stray=True))
            assert await w.send(Add(2, 2)) == 4
    assert seen == [Progress(1, 1)]


async def test_emit_outside_a_worker_is_refused() -> None:
    with pytest.raises(RuntimeError, match="handlers of a worker"):
        await emit(Progress(1, 1))


async def test_on_event_takes_events_of_the_registry_only() -> None:
    class Stray(Event):
        pass

    for bad in (Stray, Add, Unregistered):
        with pytest.raises(TypeError, match="not an Event of the registry"):
            async with echo_worker("asyncio", on_event={bad: print}):
                pass
