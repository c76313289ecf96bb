"""Testing code that uses workers: handlers alone, host code on the in-process
worker, timeouts on a virtual clock, and the real worker with a leak check.

Run it with ``python -m pytest examples/test_with_kit.py`` (it needs pytest,
and AnyIO's pytest plugin, which comes with AnyIO; the leak check needs
psutil). Every async test runs on asyncio, and on Trio where it is installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

# The examples' own modules sit beside this file. This repository's pytest
# settings (--import-mode=importlib) do not put a test's directory on
# sys.path, so the file does, for any directory pytest is run from.
sys.path.insert(0, str(Path(__file__).parent))

from primes_messages import CountPrimes, IsPrime, Messages, PrimeCount, WorkerConfig

from isolated_workers import WorkerClient, WorkerTimeoutError, open_worker
from isolated_workers.testing import open_in_process_worker

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("primes_worker.py")
HAVE_TRIO = importlib.util.find_spec("trio") is not None
NO_TRIO = pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed")


@pytest.fixture(params=["asyncio", pytest.param("trio", marks=NO_TRIO)])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The event loop each async test runs on: both, one after the other."""
    backend: str = request.param
    return backend


# --- the host code under test, and stand-ins for the worker's handlers ------


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


# --- 1. handlers are functions ----------------------------------------------


def test_handlers_are_plain_functions() -> None:
    """A handler needs no worker at all: call it."""
    assert is_prime(IsPrime(97))
    assert count_primes(CountPrimes(below=10)).count == 4


# --- 2. host code, on the in-process worker ---------------------------------


async def test_twin_primes() -> None:
    """The host code against the stand-ins, served in this event loop."""
    handlers: dict[type, Callable[[Any], Any]] = {
        IsPrime: is_prime,
        CountPrimes: count_primes,
    }
    with anyio.fail_after(5):
        async with open_in_process_worker(Messages, handlers) as worker:
            assert await twin_primes_below(worker, 100) == 8


# --- 3. timeouts, on Trio's virtual clock -----------------------------------


def trio_on_autojump_clock() -> Any:
    """An ``anyio_backend`` value: Trio, on a clock that jumps to the next
    deadline whenever every task waits."""
    if not HAVE_TRIO:
        return pytest.param("trio", marks=NO_TRIO)
    from trio.testing import MockClock

    clock = MockClock(autojump_threshold=0)
    return pytest.param(("trio", {"clock": clock}), id="trio-autojump")


@pytest.mark.parametrize("anyio_backend", [trio_on_autojump_clock()])
async def test_a_stuck_worker_times_out_at_once_on_a_virtual_clock() -> None:
    """A 30 s timeout passes as soon as every task waits: the test checks how
    the timeout is handled without waiting for it."""

    async def stuck(msg: IsPrime) -> bool:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    handlers: dict[type, Callable[[Any], Any]] = {
        IsPrime: stuck,
        CountPrimes: count_primes,
    }
    async with open_in_process_worker(Messages, handlers, timeouts=30) as worker:
        started = anyio.current_time()
        with pytest.raises(WorkerTimeoutError):
            await worker.send(IsPrime(7))
        assert anyio.current_time() - started >= 30  # virtual seconds


# --- 4. the real worker, and nothing left behind ----------------------------


@pytest.fixture
def nothing_left_behind() -> Iterator[None]:
    """Fail the test if it leaves a child process (a zombie too) or an open
    file descriptor behind. Needs psutil; POSIX only, like the library."""
    psutil = pytest.importorskip("psutil")
    this = psutil.Process()
    processes, fds = set(this.children(recursive=True)), this.num_fds()
    yield
    left = set(this.children(recursive=True)) - processes
    assert not left, f"the test left processes behind: {left}"
    assert this.num_fds() == fds, f"{this.num_fds() - fds} more open fds"


@pytest.mark.usefixtures("nothing_left_behind")
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
