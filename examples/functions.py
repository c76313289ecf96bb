"""Plain functions in workers, with no message class: ``run_sync``.

Run it from anywhere: ``python examples/functions.py`` (add ``--trio`` to run
it on Trio). The functions live in ``examples/shapes.py``, a module the
workers import by name.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from backend_option import run
from primes_messages import Messages, WorkerConfig
from shapes import Box, grow, slow_area

from isolated_workers import open_worker, open_worker_pool

PRIMES_WORKER = Path(__file__).with_name("primes_worker.py")


async def main() -> None:
    async with open_worker_pool(size=2) as pool:  # no target: a built-in worker
        bigger = await pool.run_sync(grow, Box(3, 4), 2)
        print(f"grow(Box(3, 4), 2) = {bigger}")  # a Box again, by its annotation

        try:  # only a function that a worker can import by its name
            await pool.run_sync(lambda: Box(0, 0))
        except TypeError as exc:
            print(f"Refused on the host: {exc}")

        with anyio.move_on_after(0.5):  # slow_area sleeps 10 s: it cannot be
            await pool.run_sync(slow_area, bigger, kill_on_cancel=True)  # interrupted
        print("Gave up after 0.5 s; the worker stuck in it was killed and replaced.")
        print(f"area = {await pool.run_sync(slow_area, Box(1, 1), 0.0)}")

    # Any worker runs functions too, beside the messages of its contract.
    async with open_worker(
        PRIMES_WORKER, messages=Messages, startup_data=WorkerConfig(name="shapes")
    ) as worker:
        print(f"In the primes worker: {await worker.run_sync(grow, Box(1, 1), 1)}")


if __name__ == "__main__":
    run(main)
