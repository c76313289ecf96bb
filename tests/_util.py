"""Helpers for the whole suite; test modules import from here, never from each other.

Workers are other processes, so tests synchronise on facts: lines a worker
writes to a `Beacon`, and OS facts such as a process being gone, each polled
with a deadline (reliability.md section 4). Never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, cast

import anyio
import anyio.abc
import psutil
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from isolated_workers import WorkerClient, open_worker
from tests._leaks import DIR_PREFIX
from tests.workers.fault_messages import Faults
from tests.workers.messages import Running

HAVE_TRIO = importlib.util.find_spec("trio") is not None
#: The absolute deadlock guard of a test, in seconds (reliability.md: 30).
GUARD = 30
#: How long a poll for an OS fact, or a wait for a beacon line, may take.
PATIENCE = 10.0

WorkerBackend = Literal["asyncio", "trio"]
FAULT_WORKER = "tests.workers.fault_worker"

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: The host backends every example runs on: ``example_backend`` in a test's
#: parameters, passed on to `run_example`.
EXAMPLE_BACKENDS = [
    "asyncio",
    pytest.param(
        "trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed")
    ),
]


def run_example(
    tmp_path: Path, name: str, backend: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` with its host on ``backend``, from an unrelated
    directory; check that it succeeded, and return the finished process."""
    flags = ["--trio"] if backend == "trio" else []
    # Host and worker share the pipe. Unbuffered, print writes a line and its
    # newline apart, and the two processes' lines can interleave mid-line.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *flags, *args],
        cwd=tmp_path,  # the examples must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def scale() -> int:
    """``RELIABILITY_SCALE`` (default 1): multiplies the sizes of load tests."""
    return max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))


def fault_worker(
    worker_backend: str, target: str = FAULT_WORKER, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    """``open_worker`` on the fault worker, on the given event loop."""
    return open_worker(
        target,
        messages=Faults,
        backend=cast(WorkerBackend, worker_backend),
        **options,
    )


# ---------------------------------------------------------------- rendezvous


class Beacon:
    """A file at ``path`` that a worker writes lines to, and the test awaits.

    The worker appends a line, as it would to any marker file; the test waits
    for the line with a bounded poll. (A FIFO, which wakes the test at once,
    was tried and dropped: on Trio hosts its wake-up was missed now and then,
    for a reason not found.) Tests get beacons from the ``beacon`` fixture.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    @property
    def text(self) -> str:
        """Everything written so far."""
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    @property
    def lines(self) -> list[str]:
        """The complete lines written so far."""
        text = self.text
        return text.splitlines()[: text.count("\n")]

    async def wait_for_text(self, patience: float = PATIENCE) -> str:
        """Wait until anything was written; return all the text so far."""
        await self.wait_for_lines(0, patience)
        return self.text

    async def wait_for_lines(self, count: int, patience: float = PATIENCE) -> list[str]:
        """Wait until at least ``count`` complete lines (with 0: any text) were
        written; fail the test, saying what came, after ``patience`` s."""
        with anyio.move_on_after(patience):
            while len(self.lines) < count or not self.text:
                await anyio.sleep(0.005)
            return self.lines
        pytest.fail(
            f"gave up after {patience} s waiting for {count or 'any'} line(s) in "
            f"{self.path.name}; got {self.text!r}"
        )


# ----------------------------------------------------------- polling OS facts


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
    """One line on the process ``pid``, for failure messages."""
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


def socket_dirs(base: Path | None = None) -> list[Path]:
    """The library's socket directories in ``base`` (this run's temporary one)."""
    return sorted(Path(base or tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"))


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


# ------------------------------------------------------------ byte streams


class MemorySend(ByteSendStream):
    """Byte sends into a memory object stream; records the size of each send."""

    def __init__(self, stream: MemoryObjectSendStream[bytes]) -> None:
        self._stream = stream
        self.sends: list[int] = []

    async def send(self, item: bytes) -> None:
        self.sends.append(len(item))
        await self._stream.send(bytes(item))

    async def send_eof(self) -> None:
        await self._stream.aclose()

    async def aclose(self) -> None:
        await self._stream.aclose()


class MemoryReceive(ByteReceiveStream):
    """Byte receives from a memory object stream.

    ``max_chunk`` caps what one `receive` returns (1: a byte at a time);
    ``delivered`` counts the bytes handed out so far.
    """

    def __init__(
        self, stream: MemoryObjectReceiveStream[bytes], max_chunk: int | None = None
    ) -> None:
        self._stream = stream
        self._max_chunk = max_chunk
        self._pending = b""
        self._offset = 0
        self.delivered = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._offset == len(self._pending):
            self._pending = await self._stream.receive()
            self._offset = 0
        if self._max_chunk is not None:
            max_bytes = min(max_bytes, self._max_chunk)
        start = self._offset
        self._offset = min(start + max_bytes, len(self._pending))
        self.delivered += self._offset - start
        return self._pending[start : self._offset]

    async def aclose(self) -> None:
        await self._stream.aclose()


class RecordingStream(anyio.abc.ByteStream):
    """Wraps a stream and records every byte received from and sent to the peer."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.received = bytearray()
        self.sent = bytearray()
        self.outcome = "pending"
        #: The ``max_bytes`` of each read made through it.
        self.reads: list[int] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        self.reads.append(max_bytes)
        data = await self.inner.receive(max_bytes)
        self.received += data
        return data

    async def send(self, item: bytes) -> None:
        self.sent += item
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
