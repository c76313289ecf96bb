"""A worker's life: its states, health checks, state kept across messages,
and the clean-up that runs when the host closes it (or does not).

Run it from anywhere: ``python examples/lifecycle.py`` (``--trio`` for Trio).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from backend_option import run
from lifecycle_messages import Add, Hang, LifecycleConfig, Messages, Ping

from isolated_workers import Timeouts, WorkerTimeoutError, open_worker

WORKER = Path(__file__).with_name("lifecycle_worker.py")
# A health check must be answered within 1 s; every other request keeps the
# default limit. Closing waits 1 s before SIGTERM, and 1 s more before SIGKILL.
TIMEOUTS = Timeouts(per_message={Ping: 1}, shutdown=1)


async def main(exit_dir: str) -> None:
    # 1. An ordinary life: open, serve, close.
    calm_exit = anyio.Path(exit_dir, "calm.txt")
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=LifecycleConfig(name="calm", exit_file=str(calm_exit)),
        timeouts=TIMEOUTS,
    ) as worker:
        print(f"Opened: {worker.state.name}, pid {worker.pid}.")
        health = await worker.send(Ping())
        print(f"Health check passed: worker {health.pid}, {health.requests} answered.")

        for amount in (5, 7, 30):
            total = await worker.send(Add(amount))
        print(f"Running total, kept in the worker: {total}.")
        stats = worker.stats
        print(
            f"Stats: {stats.completed} completed, {stats.failed} failed, "
            f"{stats.in_flight} in flight, {stats.respawns} respawns."
        )
    # Leaving the block closed the worker: it was asked to stop, and did.
    print(f"After the block: {worker.state.name}.")
    print(f"The worker's clean-up wrote: {(await calm_exit.read_text()).strip()}")

    # 2. A worker that hangs: a health check finds out, and closing it takes
    #    a signal, so its clean-up never runs.
    stuck_exit = anyio.Path(exit_dir, "stuck.txt")
    async with open_worker(
        WORKER,
        messages=Messages,
        startup_data=LifecycleConfig(name="stuck", exit_file=str(stuck_exit)),
        timeouts=TIMEOUTS,
    ) as worker:
        await worker.send(Hang(seconds=60))  # a notification: returns at once
        try:
            await worker.send(Ping())
        except WorkerTimeoutError as exc:
            print(f"Health check failed: {exc}.")
        print(f"State: {worker.state.name}; process alive: {worker.is_active}.")
    # The worker never read the request to stop: SIGTERM ended it after 1 s.
    print(f"After the block: {worker.state.name}.")
    print(f"The worker's clean-up ran: {await stuck_exit.exists()}.")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as exit_dir:
        run(main, exit_dir)
