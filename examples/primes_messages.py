"""The contract shared by the hosts (quickstart.py, pool.py, fleet.py,
timeouts.py, transports.py, test_with_kit.py) and the worker (primes_worker.py):
which messages exist and what they return."""

from __future__ import annotations

import attrs

from isolated_workers import Request, define_messages


@attrs.frozen
class WorkerConfig:
    """Startup data: sent once, when the worker starts."""

    name: str


@attrs.frozen
class PrimeCount:
    """The answer to a `CountPrimes` request."""

    start: int
    below: int
    count: int
    worker: str


@attrs.frozen
class CountPrimes(Request[PrimeCount]):
    """How many primes are there in ``range(start, below)``?"""

    below: int
    start: int = 0


@attrs.frozen
class IsPrime(Request[bool]):
    """Is ``n`` a prime number?"""

    n: int


Messages = define_messages(CountPrimes, IsPrime)
