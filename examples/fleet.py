"""A fleet of workers sharing one job, each started with ``task_group.start``.

Run it from anywhere: ``python examples/fleet.py``. Every worker lives in a
task of the ``fleet`` task group; cancelling the group closes them all.
"""

from __future__ import annotations

import importlib.util
import time
from functools import partial
from pathlib import Path
from typing import Literal

import anyio
from backend_option import run
from primes_messages import CountPrimes, Messages, PrimeCount, WorkerConfig

from isolated_workers import WorkerClient, start_worker

WORKER = Path(__file__).with_name("primes_worker.py")
SIZE = 4
LIMIT = 400_000
HAVE_TRIO = importlib.util.find_spec("trio") is not None


def backend_for(i: int) -> Literal["asyncio", "trio"]:
    """A worker's event loop need not be its host's: alternate, if Trio is here."""
    return "trio" if HAVE_TRIO and i % 2 else "asyncio"


async def main() -> None:
    started = time.perf_counter()
    async with anyio.create_task_group() as fleet:
        workers: list[WorkerClient] = []

        async def launch(i: int) -> None:
            worker = await fleet.start(
                partial(
                    start_worker,
                    WORKER,
                    messages=Messages,
                    startup_data=WorkerConfig(name=f"worker-{i} ({backend_for(i)})"),
                    backend=backend_for(i),
                )
            )
            workers.append(worker)  # ready; it runs until the fleet is cancelled

        async with anyio.create_task_group() as starting:  # start all at once
            for i in range(SIZE):
                starting.start_soon(launch, i)
        print(f"{SIZE} workers ready in {time.perf_counter() - started:.2f} s.")

        # One slice of the range per worker, all counted at the same time.
        step = LIMIT // SIZE
        results: list[PrimeCount] = []

        async def count(worker: WorkerClient, start: int) -> None:
            job = CountPrimes(start=start, below=start + step)
            results.append(await worker.send(job))

        async with anyio.create_task_group() as jobs:
            for i, worker in enumerate(workers):
                jobs.start_soon(count, worker, i * step)

        for r in sorted(results, key=lambda r: r.start):
            print(f"  {r.worker}: {r.count:,} primes in [{r.start:,}, {r.below:,})")
        total = sum(r.count for r in results)
        print(f"{total:,} primes below {LIMIT:,}.")

        fleet.cancel_scope.cancel()  # closes every worker, all at once
    print(f"Fleet closed; {time.perf_counter() - started:.1f} s in all.")


if __name__ == "__main__":
    run(main)
