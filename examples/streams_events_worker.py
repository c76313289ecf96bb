"""The worker of examples/streams_events.py: primes as a stream, with progress
events. Run by its host with ``open_worker(path_of_this_file, ...)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from math import isqrt

from streams_events_messages import LARGEST, Checked, Messages, Primes

from isolated_workers import emit, run_worker


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, isqrt(n) + 1))


async def primes(msg: Primes) -> AsyncIterator[int]:
    """A stream handler is an async generator: each ``yield`` is one item."""
    found = 0
    try:
        for low in range(msg.start, msg.below, msg.chunk):
            high = min(low + msg.chunk, msg.below)
            for n in range(low, high):
                if n > LARGEST:
                    raise ValueError(f"{n:,} is past {LARGEST:,}, where I stop")
                if is_prime(n):
                    found += 1
                    yield n  # paused here while the host is too far behind
            await emit(Checked(upto=high, below=msg.below))  # to on_event
    finally:
        # Runs however the stream ends: at its end, on an error, or when the
        # host stops taking items.
        print(
            f"[worker] primes below {msg.below:,}: closed after {found:,}", flush=True
        )


if __name__ == "__main__":
    run_worker(Messages, {Primes: primes})
