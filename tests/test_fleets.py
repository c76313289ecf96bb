"""Fleets built by hand: `start_worker` in the tasks of a task group.

Real worker processes and real signals, on both host backends. Cancelling the
group closes every worker and leaves no process behind; several failures at
once come out of the group as the documented errors (reliability.md F9).
"""

from __future__ import annotations

import functools
import os
import signal

import anyio
import pytest

from isolated_workers import (
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    start_worker,
)
from tests._util import FAULT_WORKER, GUARD, assert_reaped, wait_running
from tests.workers.fault_messages import Faults
from tests.workers.messages import Hold, Ping

pytestmark = pytest.mark.anyio

start = functools.partial(start_worker, FAULT_WORKER, messages=Faults)


async def test_cancelling_the_fleet_closes_every_worker() -> None:
    """Three workers started with ``task_group.start`` serve at once; cancelling
    their group closes and reaps every one of them before it returns."""
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as fleet:
            workers: list[WorkerClient] = [await fleet.start(start) for _ in range(3)]
            pids = [await worker.send(Ping()) for worker in workers]
            assert pids == [worker.pid for worker in workers]
            assert len(set(pids)) == 3
            fleet.cancel_scope.cancel()
    for pid in pids:
        assert_reaped(pid)


async def test_several_crashes_at_once_surface_as_crash_errors() -> None:
    """F9: two workers killed while each holds a request: the group raises one
    `ExceptionGroup` holding a documented error per request, and nothing of
    the library's own. The first crash seen cancels the group, which closes
    the other worker: its request fails with `WorkerClosedError` unless its
    crash was seen first. Every worker is reaped."""

    async def hold(worker: WorkerClient) -> None:
        # Shielded, so that the first crash does not cancel the second call
        # before its worker's crash is seen.
        with anyio.CancelScope(shield=True):
            await worker.send(Hold())

    pids: list[int] = []

    async def fleet_with_two_crashes() -> None:
        async with anyio.create_task_group() as fleet:
            workers: list[WorkerClient] = [await fleet.start(start) for _ in range(3)]
            pids.extend(worker.pid for worker in workers)
            for worker in workers[:2]:
                fleet.start_soon(hold, worker)
            for worker in workers[:2]:
                await wait_running(worker, 1)
            for pid in pids[:2]:
                os.kill(pid, signal.SIGKILL)
            await anyio.sleep_forever()  # the crashes end the group

    with anyio.fail_after(GUARD), pytest.raises(ExceptionGroup) as info:
        await fleet_with_two_crashes()
    errors = info.value.exceptions
    assert len(errors) == 2, errors
    assert all(type(e) in (WorkerCrashedError, WorkerClosedError) for e in errors)
    assert any(type(e) is WorkerCrashedError for e in errors)
    for pid in pids:
        assert_reaped(pid)
