"""Out-of-memory faults and a crash in the middle of a large write (A7, A8, A15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from isolated_workers import (
    Exited,
    RemoteError,
    WorkerCrashedError,
    open_worker,
)
from tests._util import FAULT_WORKER, GUARD, Beacon
from tests.workers.fault_messages import Allocate, Faults
from tests.workers.messages import Ping, Stall, Store

pytestmark = pytest.mark.anyio


async def test_memory_error_is_a_remote_error_and_the_worker_lives_on(
    worker_backend: str,
) -> None:
    """Allocating past RLIMIT_AS is a remote MemoryError; the worker lives on (A7)."""
    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER,
            messages=Faults,
            backend=worker_backend,
            env={"FAULT_ADDRESS_SPACE_HEADROOM_MIB": "256"},
        ) as worker:
            pid = worker.pid
            with pytest.raises(MemoryError) as caught:
                await worker.send(Allocate(mib=1024))
            assert isinstance(caught.value, RemoteError)
            assert await worker.send(Allocate(mib=16)) == 16 * 1024 * 1024
            assert await worker.send(Ping()) == pid


async def test_a_worker_killed_while_growing_is_reported_with_the_oom_hint(
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """SIGKILL while a handler grows its memory, as the OOM killer does (A8)."""
    marker = beacon("growing")
    with anyio.fail_after(GUARD):
        async with (
            open_worker(FAULT_WORKER, messages=Faults) as worker,
            anyio.create_task_group() as tg,
        ):

            async def grow() -> None:
                with pytest.raises(WorkerCrashedError) as caught:
                    await worker.send(Allocate(mib=512, marker=str(marker)))
                assert caught.value.reason == Exited(None, signal.SIGKILL)
                assert "out of memory is a common cause" in str(caught.value)

            tg.start_soon(grow)
            await marker.wait_for_text()
            os.kill(worker.pid, signal.SIGKILL)


async def test_a_crash_during_a_32_mib_write_fails_the_send_promptly(
    worker_backend: str, tmp_path: Path, beacon: Callable[[str], Beacon]
) -> None:
    """The worker dies while the host is stuck writing 32 MiB: send() fails within
    a second with WorkerCrashedError, and no BrokenPipeError leaks (A15)."""
    stall, entered = tmp_path / "stall", beacon("stall.entered")
    outcomes: list[WorkerCrashedError] = []

    async def send(message: Stall | Store) -> None:
        try:
            await worker.send(message)
        except WorkerCrashedError as exc:
            outcomes.append(exc)

    with anyio.fail_after(GUARD):
        async with open_worker(
            FAULT_WORKER, messages=Faults, backend=worker_backend
        ) as worker:
            async with anyio.create_task_group() as tg:
                # A sync handler stalls the worker's loop: nothing reads.
                tg.start_soon(send, Stall(str(stall)))
                await entered.wait_for_text()
                tg.start_soon(send, Store(0, b"x" * (32 * 1024 * 1024)))
                await anyio.wait_all_tasks_blocked()  # the 32 MiB write is stuck
                killed = time.monotonic()
                os.kill(worker.pid, signal.SIGKILL)
            assert time.monotonic() - killed < 1.0
    assert len(outcomes) == 2
    assert all(isinstance(exc.reason, Exited) for exc in outcomes)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_host_with_default_sigpipe_survives_a_crash_mid_write(
    backend: str, tmp_path: Path
) -> None:
    """SIGPIPE=SIG_DFL in the host, worker killed mid 32 MiB send: host lives (B12)."""
    if backend == "trio":
        pytest.importorskip("trio")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.workers.sigpipe_host",
            str(tmp_path / "stalled"),
            backend,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"SURVIVED" in done.stdout
