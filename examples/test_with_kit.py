"""Testing host code without a worker process: ``open_in_process_worker``.

Run it with ``python -m pytest examples/test_with_kit.py`` (it needs pytest and
AnyIO's pytest plugin, which AnyIO installs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from primes_messages import CountPrimes, IsPrime, Messages, PrimeCount, WorkerConfig

from isolated_workers import WorkerClient, WorkerTimeoutError, open_worker
from isolated_workers.testing import open_in_process_worker

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("primes_worker.py")


async def twin_primes_below(worker: WorkerClient, limit: int) -> int:
    """The host code under test: it only talks to a `WorkerClient`."""
    pairs = 0
    for n in range(3, limit - 2, 2):
        if await worker.send(IsPrime(n)) and await worker.send(IsPrime(n + 2)):
            pairs += 1
    return pairs


def is_prime(msg: IsPrime) -> bool:  # a stand-in for the real worker's handler
    return msg.n > 1 and all(msg.n % d for d in range(2, int(msg.n**0.5) + 1))


def count_primes(msg: CountPrimes) -> PrimeCount:
    count = sum(is_prime(IsPrime(n)) for n in range(msg.start, msg.below))
    return PrimeCount(msg.start, msg.below, count, "in-process")


async def test_twin_primes() -> None:
    handlers: dict[type, Callable[[Any], Any]] = {
        IsPrime: is_prime,
        CountPrimes: count_primes,
    }
    with anyio.fail_after(5):
        async with open_in_process_worker(Messages, handlers) as worker:
            assert await twin_primes_below(worker, 100) == 8


def test_handlers_are_plain_functions() -> None:
    """A handler needs no worker at all: call it."""
    assert is_prime(IsPrime(97))
    assert count_primes(CountPrimes(below=10)).count == 4


def test_a_stuck_worker_times_out_at_once_on_a_virtual_clock() -> None:
    """On Trio's autojump clock, a 30 s timeout passes as soon as every task
    waits: the test checks the timeout's handling without waiting for it."""
    trio = pytest.importorskip("trio")
    from trio.testing import MockClock

    async def stuck(msg: IsPrime) -> bool:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def main() -> None:
        handlers: dict[type, Callable[[Any], Any]] = {
            IsPrime: stuck,
            CountPrimes: count_primes,
        }
        async with open_in_process_worker(Messages, handlers, timeouts=30) as worker:
            with pytest.raises(WorkerTimeoutError):
                await worker.send(IsPrime(7))
            assert trio.current_time() >= 30  # virtual seconds

    trio.run(main, clock=MockClock(autojump_threshold=0))


async def test_the_real_worker_answers_and_is_gone_after() -> None:
    """The contract with the real worker process, as CI would run it: under a
    deadline, and with the process reaped once the block is left."""
    with anyio.fail_after(30):
        async with open_worker(
            WORKER, messages=Messages, startup_data=WorkerConfig(name="ci")
        ) as worker:
            assert await worker.send(IsPrime(97))
            assert await worker.send(CountPrimes(below=10)) == PrimeCount(
                0, 10, 4, "ci"
            )
            pid = worker.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped: no process, not even a zombie
