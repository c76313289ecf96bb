"""How fast do workers follow a host that is SIGKILLed? (reliability.md B6)

Runs tests/workers/dying_host.py (three workers: idle, busy in an async handler,
busy in a sync handler; then the host SIGKILLs itself) N times per backend, and
prints how long each worker took to exit after its host died, and how many
outlived it. Run from the repository root::

    python bench/host_death.py            # 20 rounds per backend
    python bench/host_death.py --rounds 5
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

_PR_SET_CHILD_SUBREAPER = 36


def one_round(backend: str, patience: float) -> list[float | None]:
    """Seconds from host death to each worker's exit (None: still alive)."""
    with (
        tempfile.TemporaryDirectory() as markers,
        subprocess.Popen(
            [sys.executable, "-m", "tests.workers.dying_host", backend, markers],
            stdout=subprocess.PIPE,
            start_new_session=True,
        ) as host,
    ):
        assert host.stdout is not None
        pids: list[int] = json.loads(host.stdout.readline())
        host.wait()
        died = time.monotonic()
        exits: dict[int, float | None] = dict.fromkeys(pids)
        while time.monotonic() < died + patience and None in exits.values():
            for pid in pids:
                # This process is a subreaper: the orphans are its children now.
                if exits[pid] is None and os.waitpid(pid, os.WNOHANG)[0]:
                    exits[pid] = time.monotonic() - died
            time.sleep(0.005)
        for pid, when in exits.items():
            if when is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        return [exits[pid] for pid in pids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="asyncio,trio")
    args = parser.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for backend in args.backends.split(","):
        times: list[float] = []
        orphans = 0
        for _ in range(args.rounds):
            for when in one_round(backend, patience=10.0):
                if when is None:
                    orphans += 1
                else:
                    times.append(when)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"{backend}: {len(times) + orphans} workers, orphans left {orphans}, "
            f"exit after host death p50 {statistics.median(times) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
