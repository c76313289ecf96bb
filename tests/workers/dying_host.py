"""A host that opens three fault workers (idle, busy in the async `Hold`, busy in
the sync `Stall`), prints their pids as JSON, then SIGKILLs itself."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio

from isolated_workers import WorkerClient, open_worker
from tests.workers.fault_messages import Faults
from tests.workers.messages import Hold, Stall


async def main(backend: str, marker_dir: str) -> None:
    held, stalled = (str(Path(marker_dir, f"busy{i}")) for i in range(2))
    markers = [held, f"{stalled}.entered"]  # what Hold and Stall mark
    async with (
        open_worker("tests.workers.fault_worker", messages=Faults) as idle,
        open_worker("tests.workers.fault_worker", messages=Faults) as busy_async,
        open_worker("tests.workers.fault_worker", messages=Faults) as busy_sync,
        anyio.create_task_group() as tg,
    ):
        workers: list[WorkerClient] = [idle, busy_async, busy_sync]
        tg.start_soon(busy_async.send, Hold(held))
        tg.start_soon(busy_sync.send, Stall(stalled))
        # Polls a file the workers write: no event crosses the process boundary.
        while not all(os.path.exists(m) for m in markers):
            await anyio.sleep(0.01)
        print(json.dumps([w.pid for w in workers]), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], backend=sys.argv[1])
