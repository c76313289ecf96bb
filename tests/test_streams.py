"""Streams: a `StreamRequest` answered by an async generator in the worker.

Real worker processes, all four host/worker pairings for the contract; the
rest on asyncio workers.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from isolated_workers import (
    RemoteError,
    Timeouts,
    WorkerClient,
    WorkerCrashedError,
    open_worker,
)
from isolated_workers._wire._protocol import STREAM_WINDOW
from tests._util import GUARD
from tests.workers.messages import Add, Count, CountState, Messages, Sleep

pytestmark = pytest.mark.anyio


def echo_worker(worker_backend: str = "asyncio", **options: Any) -> Any:
    return open_worker(
        "tests.workers.echo", messages=Messages, backend=worker_backend, **options
    )


async def collect(worker: WorkerClient, message: Count, got: list[int]) -> None:
    """Take the items into ``got`` one by one, so that those before an error
    stay there."""
    async with worker.stream(message) as items:
        async for item in items:
            got.append(item)  # noqa: PERF401


async def test_every_item_comes_in_order(worker_backend: str) -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend) as worker:
            async with worker.stream(Count(1000)) as items:
                assert [item async for item in items] == list(range(1000))
            assert await worker.send(CountState()) == [1000, 1]
            assert await worker.send(Add(1, 1)) == 2


async def test_a_slow_consumer_pauses_the_generator(worker_backend: str) -> None:
    """The worker never runs more than a window of items ahead."""
    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend) as worker:
            async with worker.stream(Count(10_000)) as items:
                taken = 0
                async for _ in items:
                    taken += 1
                    if taken % 997 == 0:
                        yielded, _ = await worker.send(CountState())
                        assert taken <= yielded <= taken + STREAM_WINDOW + 1
            assert taken == 10_000


async def test_leaving_early_closes_the_generator(worker_backend: str) -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend) as worker:
            async with worker.stream(Count(1_000_000)) as items:
                async for item in items:
                    if item == 10:
                        break

            async def closed() -> bool:
                state: list[int] = await worker.send(CountState())
                return state[1] == 1

            while not await closed():  # the cancel reaches the worker
                await anyio.sleep(0.01)
            yielded, _ = await worker.send(CountState())
            assert yielded <= 11 + STREAM_WINDOW


async def test_the_handlers_error_ends_the_stream_after_its_items() -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker() as worker:
            got: list[int] = []
            with pytest.raises(RemoteError, match="failed at 5"):
                await collect(worker, Count(10, fail_at=5), got)
            assert got == [0, 1, 2, 3, 4]
            assert await worker.send(Add(2, 2)) == 4


async def test_a_crash_mid_stream_raises_in_the_consumer(worker_backend: str) -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker(worker_backend) as worker:
            got: list[int] = []
            with pytest.raises(WorkerCrashedError):
                await collect(worker, Count(100, crash_at=50), got)
            # What the worker yielded, less what it had not written when it died.
            assert got == list(range(len(got)))
            assert len(got) <= 50


async def test_a_stalled_stream_times_out() -> None:
    """Each wait for an item is bounded by the message timeout."""
    with anyio.fail_after(GUARD):
        async with echo_worker(timeouts=Timeouts(message=0.3)) as worker:
            async with worker.stream(Count(0)) as items:
                assert [item async for item in items] == []
            with pytest.raises(TypeError, match="stream request: use stream"):
                await worker.send(Count(3))
            with pytest.raises(TypeError, match="not a stream request"):
                async with worker.stream(Sleep(1)):
                    pass


async def test_cancelling_the_consumer_cancels_the_stream() -> None:
    with anyio.fail_after(GUARD):
        async with echo_worker() as worker:
            with anyio.move_on_after(0.2):
                async with worker.stream(Count(10**9)) as items:
                    async for _ in items:
                        pass
            assert await worker.send(Add(3, 4)) == 7

            async def closed() -> bool:
                state: list[int] = await worker.send(CountState())
                return state[1] == 1

            while not await closed():
                await anyio.sleep(0.01)
