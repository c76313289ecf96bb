"""Start a worker process, give it some real work, and catch its errors.

Run it from anywhere::

    python examples/quickstart.py            # host and worker on asyncio
    python examples/quickstart.py --trio     # both on Trio (pip install trio)
    python examples/quickstart.py --uvloop   # both on asyncio with uvloop
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import anyio
from primes_messages import CountPrimes, IsPrime, Messages, WorkerConfig

from isolated_workers import open_worker

# The worker script sits next to this file, so this works from any directory.
WORKER = Path(__file__).with_name("primes_worker.py")


async def main() -> None:
    started = time.perf_counter()
    async with open_worker(
        WORKER, messages=Messages, startup_data=WorkerConfig(name="primes-1")
    ) as worker:
        print(f"Worker {worker.pid} is ready.")

        # send() returns the type the request declares: here a PrimeCount.
        result = await worker.send(CountPrimes(below=250_000))
        print(f"{result.worker} found {result.count:,} primes below {result.below:,}.")

        n = 2**31 - 1
        answer = await worker.send(IsPrime(n))  # a bool
        print(f"Is {n:,} prime? {answer}.")

        # An exception raised by a handler keeps its built-in type on the host.
        try:
            await worker.send(IsPrime(-7))
        except ValueError as exc:
            print(f"Caught on the host: {exc}")

    # Leaving the block closed the worker: the process has exited, and the
    # socket it used is gone.
    elapsed = time.perf_counter() - started
    print(f"All done in {elapsed:.1f} s: 3 requests, 1 error caught, worker closed.")


def parse_backend() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--trio", action="store_true", help="run on Trio")
    choice.add_argument("--uvloop", action="store_true", help="asyncio on uvloop")
    args = parser.parse_args()
    backend = "trio" if args.trio else "uvloop" if args.uvloop else "asyncio"
    if backend != "asyncio" and importlib.util.find_spec(backend) is None:
        sys.exit(f"{backend} is missing: pip install 'isolated-workers[{backend}]'")
    return backend


if __name__ == "__main__":
    backend = parse_backend()
    print(f"Host on {backend}; the worker runs the same event loop by default.")
    if backend == "uvloop":
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        anyio.run(main, backend=backend)
