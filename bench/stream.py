"""Throughput and peak memory of a long stream (issue 9: a 1 000 000-item stream).

For each backend, in a fresh process: start the bench worker, read 1 000 000
integers from one `Numbers` stream, and report items per second and how much
the host's and the worker's peak resident memory grew meanwhile (flat memory
means the stream's backpressure holds).

    python bench/stream.py                 # 1 000 000 items, asyncio and trio
    python bench/stream.py --items 100000 --serializer msgpack
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def _kib(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def _measure(items: int) -> tuple[float, int, int]:
    from bench_messages import Messages, Numbers, make_serializer

    from isolated_workers import open_worker

    async with open_worker(
        BENCH / "echo_worker.py", messages=Messages, serializer=make_serializer()
    ) as worker:
        async with worker.stream(Numbers(1000)) as warm:  # imports, buffers
            async for _ in warm:
                pass
        host_before = _kib(os.getpid(), "VmHWM")
        worker_before = _kib(worker.pid, "VmHWM")
        started = time.perf_counter()
        expected = 0
        async with worker.stream(Numbers(items)) as numbers:
            async for number in numbers:
                if number != expected:
                    raise AssertionError(f"item {expected} came as {number}")
                expected += 1
        elapsed = time.perf_counter() - started
        if expected != items:
            raise AssertionError(f"{expected} items of {items}")
        host_growth = _kib(os.getpid(), "VmHWM") - host_before
        worker_growth = _kib(worker.pid, "VmHWM") - worker_before
    return items / elapsed, host_growth, worker_growth


def _child(backend: str, items: int) -> None:
    import anyio

    sys.path.insert(0, str(BENCH))
    rate, host, worker = anyio.run(_measure, items, backend=backend)
    print(f"{rate:.0f} {host} {worker}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--serializer", default="json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        _child(options.child, options.items)
        return
    env = {**os.environ, "BENCH_SERIALIZER": options.serializer}
    print(f"One stream of {options.items:,} ints ({options.serializer}):")
    for backend in ("asyncio", "trio"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                backend,
                "--items",
                str(options.items),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rate, host, worker = float(out[0]), int(out[1]), int(out[2])
        print(
            f"  {backend:8} {rate:>10,.0f} items/s   peak memory growth: "
            f"host {host:,} KiB, worker {worker:,} KiB"
        )


if __name__ == "__main__":
    main()
