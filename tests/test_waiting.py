"""`Deadlines`: one watcher task per client instead of a cancel scope per call."""

from __future__ import annotations

import anyio
import pytest

from isolated_workers._host._waiting import Deadlines, waiter_factory

pytestmark = [pytest.mark.anyio, pytest.mark.pure]


class Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False


async def test_a_sooner_deadline_wakes_the_watcher() -> None:
    """An item due sooner than the one the watcher sleeps for expires first,
    and an item that finished meanwhile never expires."""
    expired: list[str] = []
    second = anyio.Event()

    def expire(item: Item) -> None:
        item.done = True
        expired.append(item.name)
        second.set()

    deadlines = Deadlines[Item](expire, lambda item: not item.done)
    _, clock = waiter_factory()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(deadlines.run, clock)
            now = clock()
            deadlines.add(now + 60, Item("late"), 3)
            finished = Item("finished")
            deadlines.add(now + 0.01, finished, 3)
            finished.done = True
            deadlines.add(now + 0.02, Item("soon"), 3)
            await second.wait()
            tg.cancel_scope.cancel()
    assert expired == ["soon"]


def test_finished_items_do_not_pile_up() -> None:
    """The heap is rebuilt once finished items are the majority."""
    deadlines = Deadlines[Item](lambda item: None, lambda item: not item.done)
    live = Item("live")
    deadlines.add(1e9, live, 1)
    for i in range(10_000):
        item = Item(str(i))
        deadlines.add(1e9, item, 2)
        item.done = True
    assert len(deadlines._heap) <= 2 * 2 + 64 + 1  # pyright: ignore[reportPrivateUsage]


async def test_waiters_wake_once_set() -> None:
    new_waiter, _ = waiter_factory()
    waiter = new_waiter()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter.wait)
            await anyio.wait_all_tasks_blocked()
            waiter.set()
            waiter.set()  # a second set changes nothing


async def test_a_waiter_set_first_returns_at_once_a_cancelled_one_is_inert() -> None:
    """A waiter set before its wait returns at once; a wait cancelled before
    the set leaves nothing behind, and the later set wakes nobody."""
    new_waiter, _ = waiter_factory()
    with anyio.fail_after(5):
        early = new_waiter()
        early.set()
        await early.wait()
        late = new_waiter()
        with anyio.move_on_after(0.01) as scope:
            await late.wait()
        assert scope.cancelled_caught
        late.set()
        await anyio.lowlevel.checkpoint()
