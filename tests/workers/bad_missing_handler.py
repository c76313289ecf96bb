"""A worker that serves the test contract with a handler for `Echo` only."""

from __future__ import annotations

from isolated_workers import run_worker
from tests.workers.messages import Echo, Echoed, Messages


async def echo(msg: Echo) -> Echoed:
    return Echoed(msg.value, msg.data)


if __name__ == "__main__":
    run_worker(Messages, {Echo: echo})
