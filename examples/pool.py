"""A pool of workers sharing many jobs: the pool picks the least busy worker.

Run it from anywhere: ``python examples/pool.py`` (add ``--trio`` to run it
on Trio).
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
from backend_option import run
from primes_messages import CountPrimes, IsPrime, Messages, PrimeCount, WorkerConfig

from isolated_workers import WorkerPool, open_worker_pool

WORKER = Path(__file__).with_name("primes_worker.py")
LIMIT = 400_000
CHUNKS = 40


async def main() -> None:
    started = time.perf_counter()
    async with open_worker_pool(
        WORKER, messages=Messages, size=4, startup_data=WorkerConfig(name="pool")
    ) as pool:
        print(f"{pool.size} workers ready in {time.perf_counter() - started:.2f} s.")
        step = LIMIT // CHUNKS
        results: list[PrimeCount] = []

        async def count(pool: WorkerPool, start: int) -> None:
            results.append(
                await pool.send(CountPrimes(start=start, below=start + step))
            )

        async with anyio.create_task_group() as jobs:  # all 40 in flight at once
            for start in range(0, LIMIT, step):
                jobs.start_soon(count, pool, start)

        total = sum(r.count for r in results)
        print(f"{total:,} primes below {LIMIT:,}, in {len(results)} chunks.")
        print("Chunks per worker:", [s.completed for s in pool.stats])

        # One request to every worker, each answering it: in the order of
        # pool.workers.
        print("Every worker agrees:", await pool.broadcast(IsPrime(2**31 - 1)))
    print(f"Pool closed; {time.perf_counter() - started:.1f} s in all.")


if __name__ == "__main__":
    run(main)
