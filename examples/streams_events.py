"""Many results for one request, and progress reports while it runs: a stream
request answered by an async generator, and events handed to ``on_event``.

Run it from anywhere: ``python examples/streams_events.py`` (add ``--trio`` to
run it on Trio). Lines starting with ``[worker]`` come from the worker.
"""

from __future__ import annotations

from pathlib import Path

from backend_option import run
from streams_events_messages import LARGEST, Checked, Messages, Primes

from isolated_workers import RemoteError, Timeouts, open_worker

WORKER = Path(__file__).with_name("streams_events_worker.py")


async def main() -> None:
    progress: list[Checked] = []  # every Checked event, in the order they came
    async with open_worker(
        WORKER,
        messages=Messages,
        on_event={Checked: progress.append},  # a sync callback, or an async one
        timeouts=Timeouts(per_message={Primes: 10}),  # per item, for a stream
    ) as worker:
        # 1. A whole stream: the primes come as the worker finds them, and a
        #    Checked event after each chunk of numbers it checked.
        async with worker.stream(Primes(below=10_000, chunk=2_500)) as primes:
            found = [p async for p in primes]
        print(f"{len(found):,} primes below 10,000; the last is {found[-1]:,}.")
        print(f"Progress events: {[event.upto for event in progress]}.")

        # 2. Stop early: leaving the block closes the generator in the worker,
        #    which never ran more than a few primes ahead of this loop.
        async with worker.stream(Primes(below=LARGEST)) as primes:
            async for prime in primes:
                if prime > 1_000:
                    break
        print(f"The first prime above 1,000 is {prime:,}; no more were needed.")

        # 3. An error partway through: the primes before it come first, then
        #    the iterator raises the handler's error.
        taken, last = 0, 0
        try:
            async with worker.stream(
                Primes(start=LARGEST - 100, below=LARGEST + 100)
            ) as primes:
                async for prime in primes:
                    taken, last = taken + 1, prime
        except RemoteError as exc:  # here also a ValueError
            print(f"{taken} primes, up to {last:,}; then {exc}")


if __name__ == "__main__":
    run(main)
