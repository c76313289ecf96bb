"""The worker: run by a host with ``open_worker(path_of_this_file, ...)``."""

from __future__ import annotations

from math import isqrt

import anyio
import anyio.lowlevel
from primes_messages import CountPrimes, IsPrime, Messages, PrimeCount, WorkerConfig

from isolated_workers import get_startup_data, run_worker

# Runs when the worker starts, before it serves any request.
config = get_startup_data(as_type=WorkerConfig)


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, isqrt(n) + 1))


async def count_primes(msg: CountPrimes) -> PrimeCount:
    """An async handler: cancellable at each ``await``."""
    count = 0
    for chunk in range(msg.start, msg.below, 10_000):
        try:
            await anyio.lowlevel.checkpoint()  # where a cancel from the host lands
        except anyio.get_cancelled_exc_class():
            print(f"[{config.name}] cancelled at {chunk:,}; still serving", flush=True)
            raise
        count += sum(map(is_prime, range(chunk, min(chunk + 10_000, msg.below))))
    return PrimeCount(msg.start, msg.below, count, config.name)


def check_prime(msg: IsPrime) -> bool:
    """A sync handler: it runs to completion, one request at a time."""
    if msg.n < 0:
        raise ValueError(f"primes are natural numbers; {msg.n} is negative")
    return is_prime(msg.n)


if __name__ == "__main__":  # the host runs this file as a script
    run_worker(Messages, {CountPrimes: count_primes, IsPrime: check_prime})
