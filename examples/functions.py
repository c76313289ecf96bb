"""Plain functions in a pool of workers, with no message class: ``run_sync``.

Run it from anywhere: ``python examples/functions.py``. The functions live in
``examples/shapes.py``, a module the workers import by name.
"""

from __future__ import annotations

import anyio
from backend_option import run
from shapes import Box, grow, slow_area

from isolated_workers import open_worker_pool


async def main() -> None:
    async with open_worker_pool(size=2) as pool:  # no target: a built-in worker
        bigger = await pool.run_sync(grow, Box(3, 4), 2)
        print(f"grow(Box(3, 4), 2) = {bigger}")  # a Box again, by its annotation

        with anyio.move_on_after(0.5):  # slow_area sleeps 10 s: it cannot be
            await pool.run_sync(slow_area, bigger, kill_on_cancel=True)  # interrupted
        print("Gave up after 0.5 s; the worker stuck in it was killed and replaced.")
        print(f"area = {await pool.run_sync(slow_area, Box(1, 1), 0.0)}")


if __name__ == "__main__":
    run(main)
