"""Load, leaks and cancellation (reliability.md (e) and (f)).

Sizes scale with the environment variable ``RELIABILITY_SCALE`` (default 1, the
scaled-down sizes for every run; ``RELIABILITY_SCALE=33`` gives the catalogue's
1000 cycles). Leak checks compare `tests._leaks` snapshots taken after a few
warm-up cycles, so that one-time allocations (thread caches, imports) do not
count; the autouse fixture of conftest.py checks every test once more.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from isolated_workers import (
    Timeouts,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerStartupError,
    WorkerState,
)
from tests import _leaks
from tests._util import (
    GUARD,
    HAVE_TRIO,
    Beacon,
    assert_reaped,
    children,
    deadlock_breaker,
    expect_error,
    fault_worker,
    scale,
    socket_dirs,
    wait_running,
)
from tests.workers.fault_messages import Die, Seen
from tests.workers.messages import Gather, Hold, Ping, Remember, Running

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

#: Open/close cycles of E3 and E4 (the catalogue's 1000 at RELIABILITY_SCALE=33).
CYCLES = 30 * scale()
WARM_UP = 3
#: The fd limit E3 runs under, so that a per-cycle fd leak fails loudly.
FD_LIMIT = 256
#: Threads that pools keep for a while after use: not leaks.
POOL_THREADS = ("Trio thread", "AnyIO worker thread", "waitpid-")


def in_flight() -> int:
    """E1's request count: 1000, the catalogue's 10 000 from RELIABILITY_SCALE=10."""
    return 10_000 if scale() >= 10 else 1000


def own_threads() -> int:
    """Threads other than those of the event loops' thread pools."""
    return sum(not t.name.startswith(POOL_THREADS) for t in threading.enumerate())


async def assert_no_leaks(before: _leaks.Snapshot, threads: int) -> None:
    """Nothing new since ``before``: fds, processes, zombies, socket dirs, threads."""
    leaks = await anyio.to_thread.run_sync(_leaks.wait_for_no_leaks, before)
    assert not leaks, leaks.describe()
    assert own_threads() == threads, threading.enumerate()


@contextlib.contextmanager
def fd_limit(limit: int) -> Iterator[None]:
    """Lower the soft RLIMIT_NOFILE to ``limit`` (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # New fds take the lowest free numbers: what counts is how many are open.
    count = len(os.listdir("/proc/self/fd"))
    if count >= limit // 2:
        pytest.skip(f"{count} fds are open already: a limit of {limit} is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- E1: many requests in flight on one worker -------------------------------------


async def test_e1_many_requests_in_flight(
    anyio_backend: object, worker_backend: str
) -> None:
    """E1: 1000 (10 000 scaled) requests in flight at once each get their own result."""
    count = in_flight()
    results: dict[int, int] = {}

    async def gather(x: int) -> None:
        results[x] = await client.send(Gather(x, count))

    with anyio.fail_after(GUARD + count / 200):
        async with fault_worker(worker_backend) as client:
            async with anyio.create_task_group() as tg:
                for x in range(count):
                    tg.start_soon(gather, x)
            assert results == {x: 2 * x + 1 for x in range(count)}
            assert await client.send(Ping()) == client.pid


# --- E3, E4: open/close cycles ---------------------------------------------------


async def test_e3_open_close_cycles_leak_nothing(anyio_backend: object) -> None:
    """E3: open/close cycles under a 256 fd limit leak no fd, process, zombie,
    socket dir or thread."""

    async def cycle() -> None:
        async with fault_worker(anyio_backend_name(anyio_backend)) as client:
            assert await client.send(Ping()) == client.pid

    with anyio.fail_after(GUARD + CYCLES):
        for _ in range(WARM_UP):
            await cycle()
        before, threads = _leaks.snapshot(), own_threads()
        with fd_limit(FD_LIMIT):
            for _ in range(CYCLES):
                await cycle()
        await assert_no_leaks(before, threads)


async def test_e4_sigkill_cycles_leak_nothing(anyio_backend: object) -> None:
    """E4: cycles that SIGKILL the worker with 5 requests in flight leak nothing."""

    async def cycle() -> None:
        async with fault_worker(anyio_backend_name(anyio_backend)) as client:
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(
                        expect_error,
                        WorkerCrashedError,
                        errors,
                        lambda: client.send(Hold()),
                    )
                await wait_running(client, 5)
                os.kill(client.pid, signal.SIGKILL)
            assert len(errors) == 5
            assert client.state is WorkerState.CRASHED

    with anyio.fail_after(GUARD + CYCLES):
        for _ in range(WARM_UP):
            await cycle()
        before, threads = _leaks.snapshot(), own_threads()
        with fd_limit(FD_LIMIT):
            for _ in range(CYCLES):
                await cycle()
        await assert_no_leaks(before, threads)


def anyio_backend_name(anyio_backend: object) -> str:
    """The backend name of an ``anyio_backend`` fixture value."""
    name = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    return str(name)


# --- E5: failing spawns ------------------------------------------------------------


async def test_e5_failing_spawns_leak_nothing(anyio_backend: object) -> None:
    """E5: spawns failing on a missing module, a bad interpreter and the startup
    timeout leak nothing."""
    backend = anyio_backend_name(anyio_backend)
    failures: dict[str, tuple[int, dict[str, Any]]] = {
        "missing module": (
            10 * scale(),
            {"target": "tests.workers.no_such_module"},
        ),
        "bad python": (10 * scale(), {"python": "/nonexistent/python3"}),
        "startup timeout": (
            3 * scale(),
            {
                "target": "tests.workers.bad_never_ready",
                "timeouts": Timeouts(startup=0.3),
            },
        ),
    }

    async def fail(options: dict[str, Any]) -> None:
        with pytest.raises(WorkerStartupError):
            async with fault_worker(backend, **options):
                pytest.fail("the worker started")

    with anyio.fail_after(GUARD + 10 * scale()):
        for _, options in failures.values():
            await fail(options)
        before, threads = _leaks.snapshot(), own_threads()
        with fd_limit(FD_LIMIT):
            for count, options in failures.values():
                for _ in range(count):
                    await fail(options)
        await assert_no_leaks(before, threads)


# --- E6, F7: cancelling open_worker -------------------------------------------------


async def test_e6_cancel_open_worker_at_every_point(
    anyio_backend: object, worker_backend: str
) -> None:
    """E6: open_worker cancelled at a sweep of deadlines, from 0 to past start-up,
    leaves no process and no socket directory.

    Where each deadline lands depends on the machine's load, so this asserts no
    count of cancellations; the Trio-host twin below cancels at every step.
    """
    steps = 15 * scale()

    async def open_and_ping() -> None:
        async with fault_worker(worker_backend) as client:
            await client.send(Ping())

    with anyio.fail_after(GUARD + steps):
        start = anyio.current_time()
        await open_and_ping()
        startup = anyio.current_time() - start
        before = children()
        for step in range(steps + 1):
            with anyio.move_on_after(1.3 * startup * step / steps):
                await open_and_ping()
            # Checked at once: the cancelled open_worker must have reaped its
            # process before the cancellation reached this task.
            assert children() == before, f"step {step}: left a process behind"
            assert socket_dirs() == [], f"step {step}: left a socket directory"


@TRIO_HOST_ONLY
async def test_e6_cancel_open_worker_at_every_checkpoint(
    anyio_backend: str, worker_backend: str
) -> None:
    """E6: open_worker cancelled at each of its checkpoints k = 1..K (counted
    with a Trio instrument) leaves no process, fd or socket directory, and
    never hangs."""
    import trio

    class CancelAtStep(trio.abc.Instrument):
        """Counts the steps of ``task``; cancels ``scope`` before step ``k``."""

        def __init__(self, k: int, scope: anyio.CancelScope | None) -> None:
            self.task = trio.lowlevel.current_task()
            self.k = k
            self.scope = scope
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            if task is self.task:
                self.steps += 1
                if self.steps == self.k and self.scope is not None:
                    self.scope.cancel()

    async def open_and_ping(instrument: CancelAtStep) -> None:
        trio.lowlevel.add_instrument(instrument)
        try:
            async with fault_worker(worker_backend) as client:
                trio.lowlevel.remove_instrument(instrument)
                await client.send(Ping())
        finally:
            with contextlib.suppress(KeyError):
                trio.lowlevel.remove_instrument(instrument)

    with anyio.fail_after(GUARD):
        counter = CancelAtStep(0, None)
        await open_and_ping(counter)
        steps = counter.steps
        assert steps > 0
        before = children()
        for k in range(1, steps + 2):
            with (
                warnings.catch_warnings(record=True) as caught,
                deadlock_breaker(GUARD / 2) as fired,
            ):
                warnings.simplefilter("always", ResourceWarning)
                with anyio.CancelScope() as scope:
                    await open_and_ping(CancelAtStep(k, scope))
                gc.collect()  # what only garbage holds: an unclosed socket warns
            assert not fired, f"k={k}: open_worker deadlocked; killed {fired}"
            assert children() == before, f"k={k}: left a process behind"
            assert socket_dirs() == [], f"k={k}: left a socket directory"
            unclosed = [str(w.message) for w in caught]
            assert not unclosed, f"k={k}: {unclosed}"


async def test_f7_cancel_during_startup_leaves_no_orphan(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    beacon: Callable[[str], Beacon],
) -> None:
    """F7: cancelling open_worker after the spawn, before the handshake, kills and
    reaps the worker and removes its socket directory before returning."""
    spawned = beacon("spawned")
    with anyio.fail_after(GUARD):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    open_and_wait,
                    worker_backend,
                    str(spawned),
                    str(tmp_path / "go-never"),
                )
                pid = int(await spawned.wait_for_text())
                assert len(socket_dirs()) == 1
                scope.cancel()
        assert scope.cancelled_caught
        assert_reaped(pid)
        assert socket_dirs() == []


async def open_and_wait(worker_backend: str, spawned: str, go: str) -> None:
    async with fault_worker(
        worker_backend, "tests.workers.slow_start", args=[spawned, go]
    ):
        pytest.fail("the worker started")


# --- F3, F4: cancelled sends --------------------------------------------------


async def test_f3_send_cancelled_before_it_starts_reaches_nothing(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """F3: a send in an already cancelled scope writes nothing: no handler runs."""
    marker = tmp_path / "held"
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            for message in (Hold(str(marker)), Remember(1), Ping()):
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await client.send(message)
                assert scope.cancelled_caught
            assert await client.send(Seen()) == 0
            assert await client.send(Running()) == 0
            assert not marker.exists()
            assert client.state is WorkerState.READY


async def test_f4_mass_cancel_returns_on_time_and_cancels_every_handler(
    anyio_backend: object, worker_backend: str
) -> None:
    """F4: 100 sends under one move_on_after all return right after its deadline,
    and the worker runs no handler afterwards."""
    with anyio.fail_after(GUARD):
        async with fault_worker(worker_backend) as client:
            pid = client.pid
            with anyio.move_on_after(GUARD) as scope:
                async with anyio.create_task_group() as tg:
                    for _ in range(100):
                        tg.start_soon(client.send, Hold())
                    await wait_running(client, 100)
                    scope.deadline = deadline = anyio.current_time() + 0.1
            returned = anyio.current_time()
            assert scope.cancelled_caught
            assert returned - deadline < 0.5
            await wait_running(client, 0)
            assert await client.send(Ping()) == pid


# --- F6: cancel during close --------------------------------------------------------


@pytest.mark.parametrize("where", ["aclose", "block-exit"])
async def test_f6_cancelled_close_still_kills_and_reaps(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    where: str,
    beacon: Callable[[str], Beacon],
) -> None:
    """F6: a close cancelled mid-escalation still SIGKILLs and reaps the worker
    before the cancellation propagates."""
    hung = beacon("hung")
    grace = 0.3
    with anyio.fail_after(GUARD):
        with anyio.move_on_after(GUARD) as scope:
            async with fault_worker(
                worker_backend, timeouts=Timeouts(shutdown=grace)
            ) as client:
                pid = client.pid
                closed: list[BaseException] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        expect_error,
                        WorkerClosedError,
                        closed,
                        lambda: client.send(Die("ignore_term_pause", str(hung))),
                    )
                    await hung.wait_for_text()
                    # The deadline passes while the worker ignores the shutdown
                    # request and SIGTERM.
                    scope.deadline = anyio.current_time() + grace / 3
                    if where == "aclose":
                        await client.aclose()
                        assert_reaped(pid)
                        assert client.state is WorkerState.CLOSED
                        await anyio.sleep_forever()
            pytest.fail("not cancelled")
        assert scope.cancel_called
        assert_reaped(pid)
        assert client.state is WorkerState.CLOSED
