"""Plain functions run by the peers (anyio.to_process, trio-parallel, multiprocessing).

Kept free of imports so that a peer's worker process, which imports this module
to unpickle the function, pays nothing for it.
"""

from __future__ import annotations


def echo_int(x: int) -> int:
    """The tiny request of S1-S3."""
    return x


def echo_bytes(data: bytes) -> bytes:
    """The large payload of S4."""
    return data
