"""Host faults (reliability.md (b)): the host cancels, times out, is interrupted,
killed or terminated.

In-process tests run on the four host/worker backend pairings. Host-death tests
run a host program (tests/workers/fault_host.py) in a session of its own, on the
same pairing, read the workers' pids from its stdout and kill it with
``killpg``; pytest itself is never signalled. pytest is a child subreaper, so a
worker that outlives its host becomes a child of pytest and is reaped here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from isolated_workers import (
    Timeouts,
    WorkerClient,
    WorkerTimeoutError,
    start_worker,
)
from tests._util import (
    FAULT_WORKER,
    GUARD,
    HAVE_TRIO,
    Beacon,
    assert_reaped,
    fault_worker,
    socket_dirs,
    wait_orphan_exit,
    wait_running,
    wait_until,
)
from tests.workers.fault_messages import Faults
from tests.workers.messages import Echo, Echoed, Hold, Ping, Stall, Store

pytestmark = pytest.mark.anyio

#: For tests that need Trio's own machinery in the host.
TRIO_HOST_ONLY = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(
            "trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="needs trio")
        )
    ],
)

ROOT = Path(__file__).resolve().parent.parent
#: Timeouts.shutdown of the workers of tests/workers/fault_host.py.
HOST_GRACE = 1.0
#: How soon a worker must exit after its host died (reliability.md B6-B8).
ORPHAN_EXIT = 2.0


# --- B1, B2: cancel and time out one request ------------------------------------------


async def test_b1_cancel_scope_cancels_the_handler(
    anyio_backend: object, worker_backend: str, beacon: Callable[[str], Beacon]
) -> None:
    """B1: cancelling a send returns promptly and cancels exactly its handler."""
    cancelled, cancelled_exit = beacon("cancelled"), beacon("cancelled.exited")
    other, other_exit = beacon("other"), beacon("other.exited")
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as others:
                others.start_soon(client.send, Hold(str(other)))
                await other.wait_for_lines(1)
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(client.send, Hold(str(cancelled)))
                        await cancelled.wait_for_lines(1)
                        start = anyio.current_time()
                        scope.cancel()
                assert anyio.current_time() - start < 0.5
                await cancelled_exit.wait_for_lines(1)
                await wait_running(client, 1)  # the other Hold runs on
                assert other_exit.text == ""
                assert await client.send(Ping()) == pid
                others.cancel_scope.cancel()
            await wait_running(client, 0)
            assert await client.send(Echo(7)) == Echoed(7)
            assert client.pid == pid


async def test_b2_message_timeout_cancels_the_handler(
    anyio_backend: object, worker_backend: str, beacon: Callable[[str], Beacon]
) -> None:
    """B2: Timeouts(message=0.2) raises WorkerTimeoutError (a TimeoutError) and
    cancels the handler; the same worker serves on."""
    held, held_exit = beacon("held"), beacon("held.exited")
    with anyio.fail_after(GUARD):
        async with fault_worker(
            worker_backend, timeouts=Timeouts(message=0.2)
        ) as client:
            pid = client.pid
            start = anyio.current_time()
            with pytest.raises(WorkerTimeoutError) as info:
                await client.send(Hold(str(held)))
            elapsed = anyio.current_time() - start
            assert isinstance(info.value, TimeoutError)
            assert 0.2 <= elapsed < 0.2 + 0.5
            await held_exit.wait_for_lines(1)
            await wait_running(client, 0)
            assert await client.send(Ping()) == pid


# --- B3: cancel during a partial write ----------------------------------------------


async def test_b3_cancel_during_a_partial_write_keeps_the_stream_in_sync(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """B3: cancelling a half-written 32 MiB request never desynchronises the stream."""
    stall = tmp_path / "stall"
    entered = beacon("stall.entered")
    stalled: list[str] = []
    big = b"\xab" * (32 << 20)

    async def stall_worker(client: WorkerClient) -> None:
        stalled.append(await client.send(Stall(str(stall))))

    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            async with anyio.create_task_group() as tg:
                # The worker's loop blocks: it reads nothing, so the big frame
                # fills the socket buffers and its write stops half-way.
                tg.start_soon(stall_worker, client)
                await entered.wait_for_text()
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as sender:
                        sender.start_soon(client.send, Store(0, big))
                        await anyio.wait_all_tasks_blocked()
                        scope.cancel()
                        Path(f"{stall}.release").write_bytes(b"")
                assert scope.cancel_called
            assert stalled == ["released"]
            results: dict[int, Echoed] = {}

            async def echo(i: int) -> None:
                results[i] = await client.send(Echo(i))

            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(echo, i)
            assert results == {i: Echoed(i) for i in range(100)}
            assert await client.send(Store(0, b"small")) == 5


# --- B5: cancel a fleet's task group -------------------------------------------------


async def test_b5_task_group_cancel_closes_a_fleet(
    anyio_backend: object, worker_backend: str
) -> None:
    """B5: cancelling a task group of 4 started workers with 40 requests in flight
    closes and reaps them all within grace + 1 s."""
    grace = 1.0
    start = functools.partial(
        start_worker,
        FAULT_WORKER,
        messages=Faults,
        backend=worker_backend,
        timeouts=Timeouts(shutdown=grace),
    )
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            clients: list[WorkerClient] = [await tg.start(start) for _ in range(4)]
            for client in clients:
                for _ in range(10):
                    tg.start_soon(client.send, Hold())
            for client in clients:
                await wait_running(client, 10)
            cancelled_at = anyio.current_time()
            tg.cancel_scope.cancel()
        elapsed = anyio.current_time() - cancelled_at
    assert elapsed < grace + 1.0
    for client in clients:
        assert_reaped(client.pid)
        assert not client.is_active
    assert socket_dirs() == []


# --- B10: the thread that spawned the worker retires --------------------------------


@TRIO_HOST_ONLY
async def test_b10_worker_outlives_the_spawning_thread(
    anyio_backend: str, worker_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B10: a worker lives on after Trio's thread that spawned it retires."""
    import trio

    monkeypatch.setattr(trio._core._thread_cache, "IDLE_TIMEOUT", 0.5)
    spawners: list[threading.Thread] = []

    class RecordingPopen(subprocess.Popen[bytes]):
        """Notes the thread that spawns each process (Trio runs Popen in its
        thread cache)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            spawners.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            monkeypatch.setattr(subprocess, "Popen", RecordingPopen.__base__)
            (spawner,) = spawners
            assert spawner is not threading.main_thread()
            await wait_until(
                lambda: not spawner.is_alive(), f"{spawner.name} to retire", 5.0
            )
            assert client.is_active
            assert await client.send(Ping()) == client.pid
            assert await client.send(Echo(3)) == Echoed(3)


# --- host programs in their own session -----------------------------------------------


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@contextlib.asynccontextmanager
async def host_program(
    mode: str, host_backend: str, worker_backend: str, directory: Path
) -> AsyncIterator[tuple[anyio.abc.Process, BufferedByteReceiveStream]]:
    """Run tests/workers/fault_host.py in a new session; kill its session at the end.

    Yields the process and its stdout; its stderr (and its workers') goes to
    ``directory / "stderr"``.
    """
    with _open_log(directory / "stderr") as stderr:
        process = await anyio.open_process(
            [
                sys.executable,
                "-m",
                "tests.workers.fault_host",
                mode,
                host_backend,
                worker_backend,
                str(directory),
            ],
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        yield process, BufferedByteReceiveStream(process.stdout)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            await process.aclose()


async def read_json(stdout: BufferedByteReceiveStream) -> dict[str, Any]:
    """The next line the host program printed, as JSON."""
    line = await stdout.receive_until(b"\n", 1 << 16)
    data: dict[str, Any] = json.loads(line)
    return data


async def wait_exit(process: anyio.abc.Process, patience: float) -> int:
    """The host's return code; fail if it runs ``patience`` s on."""
    with anyio.move_on_after(patience):
        return await process.wait()
    pytest.fail(f"the host program still runs after {patience} s")


def stderr_of(directory: Path) -> str:
    return (directory / "stderr").read_text(errors="replace")


async def test_b7_host_dies_during_the_handshake(
    anyio_backend_name: str,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """B7: a worker whose host died before the handshake exits at once and
    removes the socket directory."""
    spawned = beacon("spawned")
    before = set(socket_dirs())
    try:
        with anyio.fail_after(GUARD):
            async with host_program(
                "handshake", anyio_backend_name, worker_backend, tmp_path
            ) as (host, _):
                worker = int(await spawned.wait_for_text())
                assert len(set(socket_dirs()) - before) == 1  # the host listens
                os.killpg(host.pid, signal.SIGKILL)
                assert await wait_exit(host, 5) == -signal.SIGKILL
            # The worker now belongs to this subreaper; let it go on to connect.
            (tmp_path / "go").write_bytes(b"")
            await wait_orphan_exit(worker, ORPHAN_EXIT)
        left = set(socket_dirs()) - before
        assert not left, f"left {left}; stderr:\n{stderr_of(tmp_path)}"
        # It saw its host gone, as a worker whose host dies later does: not an
        # error (a ConnectionRefusedError traceback), and not racing its own
        # clean-up of the socket directory.
        assert "Traceback" not in stderr_of(tmp_path)
    finally:
        # Do not let a failure here fail the next tests too.
        for directory in set(socket_dirs()) - before:
            shutil.rmtree(directory, ignore_errors=True)


async def test_b8_host_exits_without_closing(
    anyio_backend_name: str, worker_backend: str, tmp_path: Path
) -> None:
    """B8: workers exit within 2 s when their host exits with os._exit()."""
    with anyio.fail_after(GUARD):
        async with host_program(
            "exit", anyio_backend_name, worker_backend, tmp_path
        ) as (host, stdout):
            pids = (await read_json(stdout))["pids"]
            assert await wait_exit(host, 5) == 0
            exited = anyio.current_time()
            for pid in pids:
                await wait_orphan_exit(pid, ORPHAN_EXIT)
            assert anyio.current_time() - exited < ORPHAN_EXIT
    assert socket_dirs() == []


async def test_b9_ctrl_c_closes_the_workers(
    anyio_backend_name: str, worker_backend: str, tmp_path: Path
) -> None:
    """B9: Ctrl+C (SIGINT to the host's process group) unwinds the host, which
    closes and reaps its workers; no worker traceback."""
    with anyio.fail_after(GUARD):
        async with host_program(
            "ctrlc", anyio_backend_name, worker_backend, tmp_path
        ) as (host, stdout):
            pids = (await read_json(stdout))["pids"]
            os.killpg(host.pid, signal.SIGINT)  # what the terminal does
            assert await wait_exit(host, 2 * HOST_GRACE + 5) == 0
            assert await read_json(stdout) == {"states": ["CLOSED", "CLOSED"]}
            assert await read_json(stdout) == {"done": "INTERRUPTED"}
    for pid in pids:
        # Reaped by the host: not even a zombie re-parented to this process.
        assert_reaped(pid)
    stderr = stderr_of(tmp_path)
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr


async def test_b11_sigterm_handler_closes_everything(
    anyio_backend_name: str, worker_backend: str, tmp_path: Path
) -> None:
    """B11: a host whose SIGTERM handler cancels its task group closes every
    worker within the grace period."""
    with anyio.fail_after(GUARD):
        async with host_program(
            "sigterm", anyio_backend_name, worker_backend, tmp_path
        ) as (host, stdout):
            pids = (await read_json(stdout))["pids"]
            start = anyio.current_time()
            os.kill(host.pid, signal.SIGTERM)
            assert await read_json(stdout) == {"states": ["CLOSED", "CLOSED"]}
            assert anyio.current_time() - start < HOST_GRACE + 1.0
            assert await read_json(stdout) == {"done": "CLOSED"}
            assert await wait_exit(host, 5) == 0
    for pid in pids:
        assert_reaped(pid)
    assert "Traceback" not in stderr_of(tmp_path)
