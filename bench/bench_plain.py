"""Plain functions run by the peers (anyio.to_process, trio-parallel, multiprocessing)
and by isolated-workers' ``WorkerPool.run_sync``.

Kept free of imports so that a worker process, which imports this module to
unpickle the function (or, for run_sync, to look it up by name), pays nothing for it.
"""

from __future__ import annotations


def echo_int(x: int) -> int:
    """The tiny request of S1-S3 and the tiny task of S5."""
    return x


def echo_bytes(data: bytes) -> bytes:
    """The large payload of S4."""
    return data
