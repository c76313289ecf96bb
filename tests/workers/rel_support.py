"""Helpers shared by the reliability tests (test_crash_faults, test_host_faults,
test_load_and_leaks).

They synchronise only on OS facts and on files the workers write, polled with
a deadline (reliability.md section 4), never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, cast

import anyio
import psutil
import pytest

from isolated_workers import WorkerClient, open_worker
from tests._leaks import DIR_PREFIX
from tests.workers.rel_messages import RelMessages, Running

WORKER = "tests.workers.rel_worker"
#: The absolute deadlock guard of every test, in seconds (reliability.md: 30).
GUARD = 30
#: How long a poll for a marker, a counter or a process may take.
PATIENCE = 10.0

WorkerBackend = Literal["asyncio", "trio"]


def scale() -> int:
    """``RELIABILITY_SCALE`` (default 1): multiplies the sizes of load tests."""
    return max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))


def rel_worker(
    worker_backend: str, target: str = WORKER, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    """``open_worker`` on the reliability worker, running the given event loop."""
    return open_worker(
        target,
        messages=RelMessages,
        backend=cast(WorkerBackend, worker_backend),
        **options,
    )


# Workers are other processes: polling is how their files and exits are seen.
async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]], what: str, patience: float = PATIENCE
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``patience`` s."""
    with anyio.move_on_after(patience):
        while not await predicate():
            await anyio.sleep(0.005)
        return
    pytest.fail(f"gave up waiting for {what}")


async def wait_until(
    predicate: Callable[[], bool], what: str, patience: float = PATIENCE
) -> None:
    """Like `wait_until_async`, for a plain function."""

    async def check() -> bool:
        return predicate()

    await wait_until_async(check, what, patience)


def line_count(path: Path) -> int:
    """Lines in the marker ``path`` (0 if it does not exist yet)."""
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


async def wait_for_file(path: Path) -> str:
    """Wait until the worker has written ``path`` (non-empty); return its text."""
    await wait_until(
        lambda: path.exists() and path.stat().st_size > 0, f"the marker {path}"
    )
    return path.read_text()


async def wait_for_lines(path: Path, lines: int) -> None:
    """Wait until the marker ``path`` holds at least ``lines`` lines."""
    await wait_until(lambda: line_count(path) >= lines, f"{lines} lines in {path}")


async def wait_running(client: WorkerClient, count: int) -> None:
    """Wait until exactly ``count`` `Hold` handlers run in the worker."""

    async def reached() -> bool:
        return await client.send(Running()) == count

    await wait_until_async(reached, f"{count} running Hold handlers")


def is_gone(pid: int) -> bool:
    """``pid`` has exited and was waited for (no process, not even a zombie)."""
    return not psutil.pid_exists(pid)


def assert_reaped(pid: int) -> None:
    """``pid`` is gone now, reaped."""
    assert is_gone(pid), f"process {pid} is still there: {describe(pid)}"


async def wait_gone(pid: int, patience: float = PATIENCE) -> None:
    """Wait until ``pid`` is gone and reaped by its parent."""
    await wait_until(lambda: is_gone(pid), f"process {pid} to be reaped", patience)


def describe(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"[{process.status()}] ppid {process.ppid()} {process.cmdline()}"
    except psutil.Error as exc:
        return repr(exc)


def reap_orphan(pid: int) -> int | None:
    """``waitpid`` an orphan this process adopted (pytest is a child subreaper):
    its wait status once it has exited, `None` while it runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return status if done else None


async def wait_orphan_exit(pid: int, patience: float) -> int:
    """Reap the adopted orphan ``pid`` and what died with its process group;
    fail if it runs ``patience`` s on."""
    with anyio.move_on_after(patience):
        while (status := reap_orphan(pid)) is None:
            await anyio.sleep(0.005)
        await _reap_group(pid)
        return status
    pytest.fail(f"process {pid} still runs after {patience} s: {describe(pid)}")


async def _reap_group(pgid: int) -> None:
    """Reap the members of a worker's group that this subreaper adopted when
    the worker died: the worker kills its whole group when its host dies, so
    these are dying already. (A Trio worker, for one, runs ``ldconfig`` the
    first time it starts a thread.) A member that lives on is left for the
    leak check to report."""
    with anyio.move_on_after(2):
        while True:
            members = []
            for child in psutil.Process().children():
                with contextlib.suppress(ProcessLookupError):
                    if os.getpgid(child.pid) == pgid:
                        members.append(child.pid)
            if not members:
                return
            for member in members:
                with contextlib.suppress(ChildProcessError):
                    reap_orphan(member)
            await anyio.sleep(0.005)


def socket_dirs() -> list[Path]:
    """The library's socket directories in this run's temporary directory."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"))


def children() -> set[tuple[int, float]]:
    """This process's descendants, as ``(pid, create_time)``."""
    found: set[tuple[int, float]] = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            found.add((child.pid, child.create_time()))
    return found


async def expect_error(
    error_type: type[BaseException],
    errors: list[BaseException],
    call: Callable[[], Awaitable[object]],
) -> None:
    """Run ``call``; it must raise ``error_type``, collected in ``errors``."""
    try:
        result = await call()
    except error_type as exc:
        errors.append(exc)
    else:
        pytest.fail(f"expected {error_type.__name__}, got the result {result!r}")


@contextlib.contextmanager
def deadlock_breaker(seconds: float) -> Iterator[list[str]]:
    """SIGKILL this process's descendants if the block runs over ``seconds``.

    ``fail_after`` cannot end a wait the library shields from cancellation; a
    worker's death ends its link, so a deadlock then fails the test instead of
    hanging the run. The list yielded is non-empty if the breaker fired.
    """
    done = threading.Event()
    fired: list[str] = []

    def watch() -> None:
        if done.wait(seconds):
            return
        for child in psutil.Process().children(recursive=True):
            fired.append(describe(child.pid))
            with contextlib.suppress(psutil.Error):
                child.kill()

    thread = threading.Thread(target=watch, name="deadlock breaker", daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join()
