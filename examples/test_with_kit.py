"""Testing host code without a worker process: ``open_in_process_worker``.

Run it with ``python -m pytest examples/test_with_kit.py`` (it needs pytest and
AnyIO's pytest plugin, which AnyIO installs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from primes_messages import CountPrimes, IsPrime, Messages, PrimeCount

from isolated_workers import WorkerClient
from isolated_workers.testing import open_in_process_worker

pytestmark = pytest.mark.anyio


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
