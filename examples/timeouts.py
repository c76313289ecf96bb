"""Time limits: the configured ones, the caller's own cancel scopes, and what
each does to the handler in the worker.

Run it from anywhere: ``python examples/timeouts.py`` (``--trio`` for Trio).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from backend_option import run
from primes_messages import CountPrimes, IsPrime, Messages, WorkerConfig
from shapes import Box, slow_area

from isolated_workers import Timeouts, WorkerTimeoutError, open_worker

WORKER = Path(__file__).with_name("primes_worker.py")
TOO_MUCH = CountPrimes(below=10**9)  # hours of work, in an async handler
BIG_PRIME = IsPrime(10**14 + 31)  # most of a second, in a sync handler


async def main() -> None:
    # Every request may take 60 s, but a CountPrimes only half a second.
    timeouts = Timeouts(message=60, per_message={CountPrimes: 0.5})
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=WorkerConfig(name="patient"),
        timeouts=timeouts,
    ) as worker:
        # 1. The configured limit: WorkerTimeoutError, which is a TimeoutError.
        #    The worker cancels the handler and keeps serving.
        try:
            await worker.send(TOO_MUCH)
        except TimeoutError as exc:
            print(f"Timed out: {type(exc).__name__}: {exc}.")

        # 2. A cancel scope of the caller's own: the host stops waiting at
        #    once, and the worker cancels the handler just the same.
        with anyio.move_on_after(0.2) as scope:
            await worker.send(TOO_MUCH)
        print(f"Gave up after 0.2 s: {scope.cancelled_caught}.")

        # 3. Both at once: the shorter limit wins. Here the caller's 0.2 s
        #    comes before the 0.5 s of CountPrimes, so fail_after raises its
        #    own TimeoutError, which is not a WorkerTimeoutError.
        try:
            with anyio.fail_after(0.2):
                await worker.send(TOO_MUCH)
        except TimeoutError as exc:
            library = isinstance(exc, WorkerTimeoutError)
            print(f"The caller's limit came first: WorkerTimeoutError? {library}.")

        # 4. A sync handler cannot be interrupted. The host stops waiting at
        #    once, but the worker finishes the handler before it reads the
        #    next request; the reply that comes then is dropped and counted.
        with anyio.move_on_after(0.1):
            await worker.send(BIG_PRIME)
        print(f"Gave up on the sync handler; late replies: {worker.late_replies}.")
        answer = await worker.send(IsPrime(7))  # waits for the sync handler
        print(f"Is 7 prime? {answer}. Late replies now: {worker.late_replies}.")

        # 5. run_sync(..., kill_on_cancel=True): the worker stuck in a sync
        #    function is killed when the call is given up, and a new one
        #    takes its place.
        first_pid = worker.pid
        with anyio.move_on_after(0.2):
            await worker.run_sync(slow_area, Box(2, 3), 60.0, kill_on_cancel=True)
        print(f"Killed the worker stuck in slow_area; state: {worker.state.name}.")
        # The next request waits for the new worker, within its own limit:
        # IsPrime has 60 s, where CountPrimes's 0.5 s might run out first.
        answer = await worker.send(IsPrime(97))
        print(f"A new worker answers: is 97 prime? {answer}.")
        print(
            f"New pid: {worker.pid != first_pid}; respawns: {worker.respawns}; "
            f"state: {worker.state.name}."
        )


if __name__ == "__main__":
    run(main)
