"""Stop waiting for a request: the worker cancels its handler and keeps serving.

Run it from anywhere: ``python examples/cancellation.py``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from backend_option import run
from primes_messages import CountPrimes, Messages, WorkerConfig

from isolated_workers import Timeouts, open_worker

WORKER = Path(__file__).with_name("primes_worker.py")
TOO_MUCH = CountPrimes(below=10**9)  # hours of work


async def main() -> None:
    # Every request may take 60 s, but a CountPrimes only half a second.
    timeouts = Timeouts(message=60, per_message={CountPrimes: 0.5})
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=WorkerConfig(name="patient"),
        timeouts=timeouts,
    ) as worker:
        # 1. A cancel scope of the caller's own: the host stops waiting at
        #    once, and the worker cancels the handler.
        with anyio.move_on_after(0.2) as scope:
            await worker.send(TOO_MUCH)
        print(f"Gave up after 0.2 s: {scope.cancelled_caught}.")

        # 2. The configured timeout: WorkerTimeoutError, a TimeoutError.
        try:
            await worker.send(TOO_MUCH)
        except TimeoutError as exc:
            print(f"Timed out: {exc}.")

        # 3. The same worker still answers.
        result = await worker.send(CountPrimes(below=1000))
        print(f"Still serving: {result.count} primes below {result.below}.")


if __name__ == "__main__":
    run(main)
