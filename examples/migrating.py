"""Plain function calls moved from a process pool executor to ``run_sync``.

Run it from anywhere: ``python examples/migrating.py``. The functions are
those of ``examples/shapes.py``, unchanged: the workers import them by name.
"""

from __future__ import annotations

import anyio
from backend_option import run
from shapes import Box, grow, slow_area

from isolated_workers import Timeouts, WorkerPool, open_worker_pool


async def grow_all(pool: WorkerPool, boxes: list[Box], by: int) -> list[Box]:
    """Grow every box at once; the results come back in the order of ``boxes``."""
    grown: dict[int, Box] = {}

    async def grow_one(index: int, box: Box) -> None:
        grown[index] = await pool.run_sync(grow, box, by)

    async with anyio.create_task_group() as tg:
        for index, box in enumerate(boxes):
            tg.start_soon(grow_one, index, box)
    return [grown[index] for index in range(len(boxes))]


async def main() -> None:
    # Open the pool once and keep it for the whole program. A call has no
    # time limit here, as with an executor, unless its caller sets one.
    async with open_worker_pool(size=2, timeouts=Timeouts(message=None)) as pool:
        # One call: await its result, typed as grow's.
        bigger = await pool.run_sync(grow, Box(3, 4), 2)
        print(f"grow(Box(3, 4), 2) = {bigger}")

        # Many calls at once, results in order: what a map gives.
        boxes = [Box(side, side) for side in range(1, 5)]
        print(f"Grown by 1: {await grow_all(pool, boxes, 1)}")

        # A time limit on one call; the worker stuck in it is killed, and
        # the pool starts another in its place.
        try:
            with anyio.fail_after(0.5):
                await pool.run_sync(slow_area, Box(2, 2), 10.0, kill_on_cancel=True)
        except TimeoutError:
            print("slow_area timed out after 0.5 s; its worker was replaced.")

        # The function's own exception comes out on the host: a negative
        # time makes time.sleep raise ValueError in the worker.
        try:
            await pool.run_sync(slow_area, Box(2, 2), -1.0)
        except ValueError as exc:
            print(f"Caught on the host: {exc}")
    print("Pool closed.")


if __name__ == "__main__":
    run(main)
