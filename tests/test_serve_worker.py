"""serve_worker: a worker that runs its own event loop."""

from __future__ import annotations

import anyio
import pytest

from isolated_workers import open_worker
from tests.workers.messages import Add, Echo, Echoed, GetStartup, Messages

pytestmark = pytest.mark.anyio


async def test_serve_worker_inside_the_workers_own_loop(worker_backend: str) -> None:
    """A worker that runs its own event loop serves its host with serve_worker."""
    with anyio.fail_after(20):
        async with open_worker(
            "tests.workers.serve_in_loop", messages=Messages, args=[worker_backend]
        ) as worker:
            assert await worker.send(Add(2, 3)) == 5
            assert await worker.send(Echo(7, b"x")) == Echoed(7, b"x")
            assert await worker.send(GetStartup()) == {"loop": worker_backend}
