"""A worker that reports which modules it has imported (import-light checks)."""

from __future__ import annotations

import sys

from isolated_workers import run_worker
from tests.workers.unit_messages import LoadedModules, Messages, WorkerInfo


def loaded_modules(msg: LoadedModules) -> list[str]:
    return sorted(name for name in msg.names if name in sys.modules)


async def worker_info(msg: WorkerInfo) -> dict[str, str]:
    import asyncio  # only to tell which loop runs this handler

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return {"backend": "trio" if "trio" in sys.modules else "unknown"}
    return {"backend": "asyncio"}


if __name__ == "__main__":
    run_worker(Messages, {LoadedModules: loaded_modules, WorkerInfo: worker_info})
