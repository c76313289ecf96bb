"""Waiting for replies cheaply: a one-shot waiter per call and one deadline
watcher per client, instead of an `anyio.Event` and a cancel scope per call.

A request's round trip costs tens of microseconds, so what the host does per
call shows: AnyIO's portable primitives look the backend up on every use, and
a cancel scope per call costs about a tenth of a round trip.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import anyio

from .._util import current_backend

__all__ = ["Deadlines", "Waiter", "waiter_factory"]

T = TypeVar("T")


class Waiter(Protocol):
    """Set once; `wait` returns once it is set (or raises if cancelled)."""

    def set(self) -> None: ...
    async def wait(self) -> None: ...


def waiter_factory() -> tuple[Callable[[], Waiter], Callable[[], float]]:
    """The cheapest waiter and clock of the running backend."""
    if current_backend() == "trio":
        import trio
        from trio.lowlevel import Abort, Task

        lowlevel = trio.lowlevel

        class TaskWaiter:
            """The waiting task itself, parked and rescheduled: a `trio.Event`
            would add a parking lot and its bookkeeping to every call."""

            __slots__ = ("_done", "_task")

            def __init__(self) -> None:
                self._done = False
                self._task: Task | None = None

            def set(self) -> None:
                if not self._done:
                    self._done = True
                    if self._task is not None:
                        lowlevel.reschedule(self._task)
                        self._task = None

            def _abort(self, _: object) -> Abort:
                self._task = None  # cancelled: a later set() wakes nobody
                return Abort.SUCCEEDED

            async def wait(self) -> None:
                if self._done:
                    await lowlevel.checkpoint()
                    return
                self._task = lowlevel.current_task()
                await lowlevel.wait_task_rescheduled(self._abort)

        return TaskWaiter, trio.current_time
    import asyncio

    loop = asyncio.get_running_loop()

    class FutureWaiter:
        __slots__ = ("_future",)

        def __init__(self) -> None:
            self._future: asyncio.Future[None] = loop.create_future()

        def set(self) -> None:
            if not self._future.done():  # or cancelled with its waiter
                self._future.set_result(None)

        async def wait(self) -> None:
            await self._future

    return FutureWaiter, loop.time


class Deadlines(Generic[T]):
    """Expires items whose deadline passed, from one task (`run`).

    ``is_live(item)`` tells whether an item still waits; items that finished
    stay in the heap until their deadline or until the heap is rebuilt, which
    happens once finished items are the majority.
    """

    def __init__(
        self, expire: Callable[[T], None], is_live: Callable[[T], bool]
    ) -> None:
        self._expire = expire
        self._is_live = is_live
        self._heap: list[tuple[float, int, T]] = []
        self._count = 0  # tie-breaker: items are never compared
        self._live = 0
        self._next = math.inf  # when the watcher wakes next
        self._wake = anyio.Event()

    def add(self, deadline: float, item: T, live: int) -> None:
        """Watch ``item``; ``live`` is how many items wait now."""
        heap = self._heap
        if len(heap) > 2 * live + 64:
            heap[:] = [entry for entry in heap if self._is_live(entry[2])]
            heapq.heapify(heap)
        self._count += 1
        heapq.heappush(heap, (deadline, self._count, item))
        if deadline < self._next:
            self._wake.set()

    async def run(self, clock: Callable[[], float]) -> None:
        """Expire items as their deadlines pass; runs until cancelled."""
        heap = self._heap
        while True:
            now = clock()
            while heap and heap[0][0] <= now:
                item = heapq.heappop(heap)[2]
                if self._is_live(item):
                    self._expire(item)
            self._next = heap[0][0] if heap else math.inf
            self._wake = anyio.Event()
            with anyio.move_on_after(self._next - now):
                await self._wake.wait()
