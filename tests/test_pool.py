"""`open_worker_pool`: dispatch, replacement, recycling, broadcast, close.

Real worker processes (tests/workers/fault_worker.py) and real signals, on both
host backends; the workers run asyncio, since nothing here depends on the
worker's event loop. Each test runs under ``fail_after``; the autouse leak
check adds that no process, fd or socket directory is left behind.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from isolated_workers import (
    Retry,
    Timeouts,
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerPool,
    WorkerStartupError,
    WorkerState,
    WorkerTimeoutError,
    open_worker_pool,
)
from tests._util import (
    FAULT_WORKER,
    GUARD,
    Beacon,
    wait_gone,
    wait_running,
    wait_until,
)
from tests.workers.fault_messages import Faults, Gated
from tests.workers.messages import Echo, Echoed, Hold, Ping

pytestmark = pytest.mark.anyio


def pool(size: int, **options: Any) -> Any:
    return open_worker_pool(FAULT_WORKER, messages=Faults, size=size, **options)


def pids(pool: WorkerPool) -> list[int]:
    return [client.pid for client in pool.workers]


async def wait_full(pool: WorkerPool, size: int, old: set[int]) -> None:
    """Wait until the pool holds ``size`` ready workers, none of them in ``old``."""

    def full() -> bool:
        ready = [c for c in pool.workers if c.state is WorkerState.READY]
        return len(ready) == size and not {c.pid for c in ready} & old

    await wait_until(full, f"{size} new ready workers")


async def test_requests_go_to_the_least_busy_worker() -> None:
    """A worker busy with a held request gets nothing more while another is
    idle; `stats` counts what each did."""
    with anyio.fail_after(GUARD):
        async with pool(2) as workers, anyio.create_task_group() as tg:
            assert len(set(pids(workers))) == 2
            tg.start_soon(workers.send, Hold())
            await wait_until(lambda: any(s.in_flight for s in workers.stats), "Hold")
            [busy] = [c for c in workers.workers if c.stats.in_flight]
            await wait_running(busy, 1)
            for _ in range(3):
                assert await workers.send(Ping()) != busy.pid
            stats = {s.pid: s for s in workers.stats}
            assert stats[busy.pid].in_flight == 1
            assert [s.completed for s in stats.values() if s.pid != busy.pid] == [3]
            tg.cancel_scope.cancel()


async def test_10k_requests_in_flight_across_a_pool_of_4_all_answered() -> None:
    """E2: every request gets its own answer, and each worker takes its share."""
    results: dict[int, Echoed] = {}

    async def one(pool: WorkerPool, x: int) -> None:
        results[x] = await pool.send(Echo(x))

    with anyio.fail_after(120):
        async with pool(4) as workers:
            async with anyio.create_task_group() as tg:
                for x in range(10_000):
                    tg.start_soon(one, workers, x)
            shares = [s.completed for s in workers.stats]
    assert results == {x: Echoed(x) for x in range(10_000)}
    assert sum(shares) == 10_000
    assert all(2000 <= share <= 3000 for share in shares), shares


async def test_a_crashed_worker_is_replaced() -> None:
    """Under `Reject`, the request of a killed worker fails; a new worker takes
    its place, and the pool serves on at full size."""
    with anyio.fail_after(GUARD):
        async with pool(2) as workers:
            victim = workers.workers[0]
            old = set(pids(workers))
            async with anyio.create_task_group() as tg:

                async def held() -> None:
                    with pytest.raises(WorkerCrashedError):
                        await victim.send(Hold())

                tg.start_soon(held)
                await wait_running(victim, 1)
                os.kill(victim.pid, signal.SIGKILL)
            await wait_gone(victim.pid)
            await wait_full(workers, 2, {victim.pid})
            assert sum(s.replacements for s in workers.stats) == 1
            assert len(old & set(pids(workers))) == 1  # the other one serves on
            answered = {await workers.send(Ping()) for _ in range(4)}
            assert answered == set(pids(workers))  # idle ties take turns


async def test_every_worker_killed_at_once_the_pool_recovers() -> None:
    """A22: four workers killed together, each with a request pending: every
    request resolves, and the pool is back to four new workers."""
    with anyio.fail_after(GUARD):
        async with pool(4) as workers:
            old = set(pids(workers))
            outcomes: list[BaseException] = []

            async def held(client: WorkerClient) -> None:
                try:
                    await client.send(Hold())
                except WorkerCrashedError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                for client in workers.workers:
                    tg.start_soon(held, client)
                for client in workers.workers:
                    await wait_running(client, 1)
                for pid in old:
                    os.kill(pid, signal.SIGKILL)
            assert len(outcomes) == 4
            with anyio.fail_after(5):
                await wait_full(workers, 4, old)
            assert sum(s.replacements for s in workers.stats) == 4


async def test_a_retried_request_is_answered_by_the_replacement() -> None:
    """Under `Retry`, the request of a killed worker is sent again and answered."""
    with anyio.fail_after(GUARD):
        async with pool(1, unexpected_shutdown=Retry(attempts=2)) as workers:
            first = workers.workers[0].pid
            os.kill(first, signal.SIGKILL)
            assert await workers.send(Ping()) != first


async def test_workers_are_recycled_after_max_requests_in_order() -> None:
    """A23: with ``max_requests_per_worker=2`` and 20 requests queued on one
    worker, all complete, in order, two to each worker."""
    answers: list[tuple[int, int]] = []

    async def one(pool: WorkerPool, x: int) -> None:
        answers.append((x, await pool.send(Ping())))

    with anyio.fail_after(GUARD * 2):
        async with pool(1, max_requests_per_worker=2) as workers:
            async with anyio.create_task_group() as tg:
                for x in range(20):
                    tg.start_soon(one, workers, x)
                    await anyio.lowlevel.checkpoint()  # queued in this order
            assert workers.stats[0].replacements >= 9
    order = [x for x, _ in sorted(answers, key=lambda a: a[0])]
    assert order == list(range(20))
    by_worker = [pid for _, pid in sorted(answers)]
    assert len(set(by_worker)) == 10
    assert all(by_worker[2 * i] == by_worker[2 * i + 1] for i in range(10))


async def test_the_time_spent_in_line_counts_against_the_limit(
    tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """A request that waits in line for a worker has its limit counted from
    when it was sent, not from when a worker took it: here 2.5 s in line and
    a 4 s limit time out at about 4 s, not after 6.5 s and a respawn."""
    gate = tmp_path / "gate"
    limit, in_line = 4.0, 2.5  # the replacement has 1.5 s to start
    timeouts = Timeouts(per_message={Hold: limit})

    async def open_the_gate_later() -> None:
        await anyio.sleep(in_line)  # the time in line, which the test is about
        gate.touch()

    with anyio.fail_after(GUARD):
        async with (
            pool(1, max_requests_per_worker=1, timeouts=timeouts) as workers,
            anyio.create_task_group() as tg,
        ):
            # The only worker takes this one and retires: the next request
            # waits in line for its replacement until the gate opens.
            entered = beacon("entered")
            tg.start_soon(workers.send, Gated(1, str(gate), str(entered)))
            await entered.wait_for_text()
            tg.start_soon(open_the_gate_later)
            started = anyio.current_time()
            with pytest.raises(WorkerTimeoutError, match="'Hold' did not"):
                await workers.send(Hold())
            elapsed = anyio.current_time() - started
    # Without the wait counted it takes in_line + limit and a respawn: the
    # whole time in line is the margin for a loaded machine.
    assert limit <= elapsed < limit + in_line


async def test_broadcast_reaches_every_worker_in_order() -> None:
    with anyio.fail_after(GUARD):
        async with pool(3) as workers:
            assert await workers.broadcast(Ping()) == pids(workers)


async def test_close_fails_pending_requests_and_refuses_new_ones() -> None:
    with anyio.fail_after(GUARD):
        async with pool(2) as workers:
            async with anyio.create_task_group() as tg:

                async def held() -> None:
                    with pytest.raises(WorkerClosedError):
                        await workers.send(Hold())

                tg.start_soon(held)
                await wait_until(
                    lambda: any(s.in_flight for s in workers.stats), "a request"
                )
                await workers.aclose()
            with pytest.raises(WorkerClosedError):
                await workers.send(Ping())
            assert workers.workers == []
            await workers.aclose()  # idempotent


async def test_a_worker_that_cannot_start_fails_the_pool_cleanly() -> None:
    """The error is the worker's own `WorkerStartupError`, not a group, and
    the workers that did start are closed."""
    with anyio.fail_after(GUARD), pytest.raises(WorkerStartupError):
        async with open_worker_pool(
            "tests.workers.bad_import_error", messages=Faults, size=3
        ):
            pytest.fail("the pool should not open")


async def test_an_exception_in_the_block_keeps_its_identity() -> None:
    with anyio.fail_after(GUARD), pytest.raises(LookupError):
        async with pool(2):
            raise LookupError("mine")


async def test_bad_sizes_are_refused() -> None:
    sizes: list[Any] = [0, -1, 1.5, True]
    for size in sizes:
        with pytest.raises(ValueError, match="size"):
            async with pool(size):
                pass
    with pytest.raises(ValueError, match="max_requests_per_worker"):
        async with pool(1, max_requests_per_worker=0):
            pass
