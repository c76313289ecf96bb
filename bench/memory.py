"""Peak memory of one large echo, in payload sizes (performance.md: at most 2).

Each backend runs in a fresh process: it starts a worker, makes the payload,
notes its own resident size and the worker's peak, then sends one `EchoBytes`
and reads both peaks again. What a process held before (the payload itself, for
the host) is not counted: only what the round trip added at its peak.

    python bench/memory.py                 # 48 MiB over msgpack, asyncio and trio
    python bench/memory.py --size 64 --serializer pickle
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MIB = 1024 * 1024


def _kib(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def _measure(size: int) -> tuple[float, float]:
    from bench_messages import EchoBytes, Messages, make_serializer

    from isolated_workers import open_worker

    async with open_worker(
        BENCH / "echo_worker.py", messages=Messages, serializer=make_serializer()
    ) as worker:
        payload = os.urandom(size)
        host_before = _kib(os.getpid(), "VmRSS")
        worker_before = _kib(worker.pid, "VmRSS")
        echoed = await worker.send(EchoBytes(payload))
        assert echoed == payload
        host_peak = _kib(os.getpid(), "VmHWM")
        worker_peak = _kib(worker.pid, "VmHWM")
    per_payload = size / 1024
    return (host_peak - host_before) / per_payload, (
        worker_peak - worker_before
    ) / per_payload


def _child(backend: str, size: int) -> None:
    import anyio

    sys.path.insert(0, str(BENCH))
    host, worker = anyio.run(_measure, size, backend=backend)
    print(f"{host:.2f} {worker:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48, help="payload in MiB")
    parser.add_argument("--serializer", default="msgpack")
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    size = options.size * MIB
    if options.child:
        _child(options.child, size)
        return
    env = {**os.environ, "BENCH_SERIALIZER": options.serializer}
    print(f"Peak memory added by one {options.size} MiB echo ({options.serializer}),")
    print("in payload sizes (the result itself is one):")
    for backend in options.backends.split(","):
        done = subprocess.run(
            [sys.executable, __file__, "--child", backend, "--size", str(options.size)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        host, worker = done.stdout.split()
        print(f"  {backend:8} host {host}  worker {worker}")


if __name__ == "__main__":
    main()
