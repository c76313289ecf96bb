"""The host side against real worker processes, on all four host/worker pairings.

Each test requests ``anyio_backend`` (the host's event loop) and ``worker_backend``
(the worker's), runs under an absolute ``fail_after`` guard and synchronises only
on markers (files the worker writes), handshakes and worker-side counters, never
on sleeps. The worker is ``tests/workers/host_worker.py``.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anyio
import psutil
import pytest

from isolated_workers import (
    Exited,
    PipeTransport,
    ProtocolError,
    RemoteError,
    Timeouts,
    UnixSocketTransport,
    WorkerClient,
    WorkerClosedError,
    WorkerCrashedError,
    WorkerError,
    WorkerState,
    WorkerTimeoutError,
    get_startup_data,
    open_worker,
    start_worker,
)
from tests.workers.host_messages import (
    Active,
    Big,
    Block,
    Compose,
    Composite,
    Echo,
    Echoed,
    Explode,
    GetPid,
    GetStartupAs,
    GetStartupRaw,
    Hang,
    Hold,
    HostMessages,
    Inner,
    Nap,
    Point,
    Record,
    Records,
    Rendezvous,
    Stall,
    StartupBundle,
    StartupConfig,
    StartupReport,
    Store,
)

pytestmark = pytest.mark.anyio

WORKER = "tests.workers.host_worker"
#: The absolute deadlock guard of every test, in seconds.
GUARD = 20
#: How long a poll for a marker or a counter may take before the test fails.
PATIENCE = 10.0

WorkerBackend = Literal["asyncio", "trio"]
E = TypeVar("E", bound=BaseException)

#: Options giving host and worker a frame limit of 1024 bytes.
SMALL_FRAMES: dict[str, Any] = {
    "max_frame_size": 1024,
    "startup_data": {"worker_max_frame_size": 1024},
}

# --- helpers ------------------------------------------------------------------


def host_worker(
    worker_backend: str, **options: Any
) -> AbstractAsyncContextManager[WorkerClient]:
    """``open_worker`` on the host-test worker, running the given event loop."""
    return open_worker(
        WORKER,
        messages=HostMessages,
        backend=cast(WorkerBackend, worker_backend),
        **options,
    )


def start_host_worker(
    worker_backend: str,
) -> functools.partial[Coroutine[Any, Any, None]]:
    """``start_worker`` on the host-test worker, for ``TaskGroup.start``.

    TaskGroup.start takes no keyword arguments (on anyio as on Trio): the
    options reach start_worker through functools.partial.
    """
    return functools.partial(
        start_worker,
        WORKER,
        messages=HostMessages,
        backend=cast(WorkerBackend, worker_backend),
    )


@asynccontextmanager
async def hung_worker(worker_backend: str, hung: Path) -> AsyncIterator[WorkerClient]:
    """A host-test worker (shutdown timeout 0.3 s) that `Hang` has blocked:
    it ignores SIGTERM and has written the marker ``hung``."""
    async with host_worker(worker_backend, timeouts=Timeouts(shutdown=0.3)) as client:
        await client.send(Hang(str(hung)))
        await wait_for_file(hung)
        yield client


# The worker is another process: polling is the way to see its files appear.
async def wait_until_async(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``predicate`` with short sleeps until it holds; fail after PATIENCE."""
    with anyio.move_on_after(PATIENCE):
        while not await predicate():
            await anyio.sleep(0.005)
        return
    pytest.fail(f"gave up waiting for {what}")


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Like `wait_until_async`, for a predicate that is a plain function."""

    async def check() -> bool:
        return predicate()

    await wait_until_async(check, what)


def marker(path: Path, suffix: str) -> Path:
    """The marker file ``<path>.<suffix>`` the worker writes (see host_messages)."""
    return Path(f"{path}.{suffix}")


def exists(path: Path) -> bool:
    """Whether ``path`` exists (a sync helper: a stat is not worth a thread)."""
    return path.exists()


def status(client: WorkerClient) -> tuple[WorkerState, bool, bool]:
    """``(state, is_active, is_connected)`` of ``client``, read afresh (a call
    keeps type checkers from narrowing the properties between reads)."""
    return client.state, client.is_active, client.is_connected


async def wait_for_file(path: Path) -> None:
    """Wait until the worker has written ``path``."""
    await wait_until(path.exists, f"the marker {path}")


async def wait_for_files(paths: list[Path]) -> None:
    """Wait until the worker has written every one of ``paths``."""
    await wait_until(lambda: all(p.exists() for p in paths), f"{len(paths)} markers")


async def active_handlers(client: WorkerClient, count: int) -> None:
    """Wait until exactly ``count`` `Hold` handlers run in the worker."""

    async def reached() -> bool:
        return await client.send(Active()) == count

    await wait_until_async(reached, f"{count} active Hold handlers")


async def send_block(
    client: WorkerClient, block: Path, error_type: type[E], errors: list[E]
) -> None:
    """Send ``Block(block)``; collect the ``error_type`` error it fails with."""
    try:
        await client.send(Block(str(block)))
    except error_type as exc:
        errors.append(exc)


async def start_blocks(
    tg: anyio.abc.TaskGroup,
    client: WorkerClient,
    blocks: list[Path],
    error_type: type[E],
) -> list[E]:
    """Start a `send_block` in ``tg`` for each of ``blocks`` and wait until every
    handler has entered; the list returned fills with their ``error_type`` errors."""
    errors: list[E] = []
    for block in blocks:
        tg.start_soon(send_block, client, block, error_type, errors)
    await wait_for_files([marker(b, "entered") for b in blocks])
    return errors


async def assert_sends_fail(client: WorkerClient, error_type: type[Exception]) -> None:
    """A request and a notification both fail with ``error_type``."""
    with pytest.raises(error_type):
        await client.send(Echo(1))
    with pytest.raises(error_type):
        await client.send(Record(1))


def assert_child(pid: int) -> None:
    """``pid`` is a live child process of this test process."""
    process = psutil.Process(pid)
    assert process.ppid() == os.getpid()
    assert process.status() != psutil.STATUS_ZOMBIE


def assert_reaped(pid: int) -> None:
    """``pid`` has exited and was waited for: no process, not even a zombie."""
    assert not psutil.pid_exists(pid), f"worker {pid} is still there"


async def assert_serving(client: WorkerClient, pid: int) -> None:
    """The worker ``pid`` is still the one answering, and answers correctly."""
    assert client.state is WorkerState.READY
    assert await client.send(GetPid()) == pid
    assert await client.send(Echo(41, b"ok")) == Echoed(41, b"ok")


async def assert_block_cancelled(client: WorkerClient, block: Path, pid: int) -> None:
    """The `Block` handler of ``block`` had entered and was cancelled (it ran its
    ``finally``), and the worker ``pid`` serves on."""
    assert exists(marker(block, "entered"))
    await wait_for_file(marker(block, "exited"))
    await assert_serving(client, pid)


def assert_only_client_closed(clients: list[WorkerClient]) -> None:
    """``clients`` holds one client, closed and with its worker reaped."""
    (client,) = clients
    assert client.state is WorkerState.CLOSED
    assert_reaped(client.pid)


def expected_composite(seed: int) -> Composite:
    """What the worker's `Compose` handler builds from ``seed``."""
    points = [Point(seed + i, i / 4) for i in range(3)]
    return Composite(
        name=f"seed-{seed}",
        points=points,
        by_name={f"p{i}": p for i, p in enumerate(points)},
        pair=(seed, str(seed)),
        blob=bytes(range(seed, seed + 4)),
        maybe=None if seed % 2 else seed,
        flag=seed > 0,
        nothing=None,
    )


# --- 1. requests, notifications, concurrency ----------------------------------


async def test_request_round_trip(anyio_backend: object, worker_backend: str) -> None:
    """A request returns its handler's result, structured to the declared type."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            result = await client.send(Echo(7, b"\x00\xffbytes"))
            assert result == Echoed(7, b"\x00\xffbytes")
            assert type(result.data) is bytes


async def test_composite_result_is_the_same_on_every_pairing(
    anyio_backend: object, worker_backend: str
) -> None:
    """A nested attrs result comes back exactly as built on every pairing."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            for seed in (0, 5, 6):
                result = await client.send(Compose(seed))
                assert result == expected_composite(seed)
                assert type(result.pair) is tuple
                assert type(result.points[0]) is Point
                assert type(result.points[1].x) is float


async def test_notification_returns_none_and_is_applied(
    anyio_backend: object, worker_backend: str
) -> None:
    """A notification returns None once written; a later request sees its effect."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            assert await client.send(Record(1)) is None  # type: ignore[func-returns-value]
            assert await client.send(Record(2)) is None  # type: ignore[func-returns-value]
            assert await client.send(Records()) == [1, 2]


async def test_every_send_lets_other_tasks_run(anyio_backend: object) -> None:
    """send() is a checkpoint, as Trio's own async functions are, even when the
    kernel takes a notification at once: a sibling task runs between sends."""
    ticks = 0

    async def sibling(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal ticks
        task_status.started()
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async def interleavings(send: Callable[[int], Awaitable[object]]) -> int:
        count = 0
        for i in range(200):
            before = ticks
            await send(i)
            count += ticks > before
        return count

    with anyio.fail_after(GUARD):
        async with host_worker("asyncio") as client, anyio.create_task_group() as tg:
            await tg.start(sibling)
            # Trio runs a batch of ready tasks in a random order, so the sibling
            # may come before or after the sender: count, do not expect 200.
            assert await interleavings(lambda i: client.send(Record(i))) >= 50
            assert await interleavings(lambda i: client.send(GetPid())) >= 50
            tg.cancel_scope.cancel()


async def test_sync_handlers_answer(anyio_backend: object, worker_backend: str) -> None:
    """Sync handlers serve requests and run in arrival order."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            assert await client.send(Store(3, b"abc")) == 3
            assert await client.send(Store(4)) == 0
            assert await client.send(GetPid()) == client.pid
            assert await client.send(Records()) == [3, 4]


async def test_many_requests_in_flight(
    anyio_backend: object, worker_backend: str
) -> None:
    """200 concurrent sends each get their own result."""
    results: dict[int, Echoed] = {}

    async def call(client: WorkerClient, i: int) -> None:
        results[i] = await client.send(Echo(i, i.to_bytes(2, "big")))

    with anyio.fail_after(GUARD):
        async with (
            host_worker(worker_backend) as client,
            anyio.create_task_group() as tg,
        ):
            for i in range(200):
                tg.start_soon(call, client, i)
    assert results == {i: Echoed(i, i.to_bytes(2, "big")) for i in range(200)}


async def test_async_handlers_run_concurrently(
    anyio_backend: object, worker_backend: str
) -> None:
    """Two async handlers that each wait for the other to enter both complete."""
    results: list[int] = []

    async def call(client: WorkerClient) -> None:
        results.append(await client.send(Rendezvous("pair", parties=2)))

    with anyio.fail_after(GUARD):
        async with (
            host_worker(worker_backend) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(call, client)
            tg.start_soon(call, client)
    assert results == [2, 2]


# --- 2. the client's state and aclose() ----------------------------------------


async def test_client_state_before_and_after_close(
    anyio_backend: object, worker_backend: str
) -> None:
    """state/is_active/is_connected/pid track aclose(), which is idempotent."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            assert status(client) == (WorkerState.READY, True, True)
            assert_child(pid)
            assert await client.send(GetPid()) == pid

            await client.aclose()
            assert status(client) == (WorkerState.CLOSED, False, False)
            assert client.pid == pid
            assert_reaped(pid)

            await client.aclose()  # idempotent
            assert status(client) == (WorkerState.CLOSED, False, False)
            await assert_sends_fail(client, WorkerClosedError)
        # Leaving the block closes it once more: still a no-op.
        assert status(client) == (WorkerState.CLOSED, False, False)


async def test_aclose_fails_pending_requests(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """Requests in flight when aclose() runs fail with WorkerClosedError."""
    blocks = [tmp_path / f"block{i}" for i in range(3)]
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            async with anyio.create_task_group() as tg:
                errors = await start_blocks(tg, client, blocks, WorkerClosedError)
                await client.aclose()
            assert client.state is WorkerState.CLOSED
            assert_reaped(client.pid)
    assert len(errors) == 3
    assert len({id(e) for e in errors}) == 3


# --- 3 and 4. exception identity, start_worker ----------------------------------


async def test_user_exception_leaves_open_worker_as_itself(
    anyio_backend: object, worker_backend: str
) -> None:
    """A KeyError raised inside open_worker() comes out as itself, unwrapped."""
    error = KeyError("user code")
    clients: list[WorkerClient] = []

    async def use_and_fail() -> None:
        async with host_worker(worker_backend) as client:
            clients.append(client)
            assert await client.send(Echo(1)) == Echoed(1)
            raise error

    with anyio.fail_after(GUARD), pytest.raises(KeyError) as excinfo:
        await use_and_fail()
    assert excinfo.value is error
    assert excinfo.type is KeyError
    assert_only_client_closed(clients)


async def test_start_worker_returns_a_ready_client(
    anyio_backend: object, worker_backend: str
) -> None:
    """start_worker gives a READY client; cancelling its task group reaps it."""
    start = start_host_worker(worker_backend)
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            client: WorkerClient = await tg.start(start)
            assert client.state is WorkerState.READY
            assert client.is_active
            assert_child(client.pid)
            assert await client.send(Echo(5)) == Echoed(5)
            tg.cancel_scope.cancel()
    assert status(client) == (WorkerState.CLOSED, False, False)
    assert_reaped(client.pid)


async def test_user_exception_with_start_worker(
    anyio_backend: object, worker_backend: str
) -> None:
    """A KeyError beside start_worker comes out alone and the worker is reaped."""
    error = KeyError("user code")
    start = start_host_worker(worker_backend)
    clients: list[WorkerClient] = []

    async def use_and_fail() -> None:
        async with anyio.create_task_group() as tg:
            clients.append(await tg.start(start))
            assert await clients[0].send(Echo(1)) == Echoed(1)
            raise error

    group = pytest.RaisesGroup(KeyError, allow_unwrapped=True)
    with anyio.fail_after(GUARD), group as excinfo:
        await use_and_fail()
    caught: BaseException = excinfo.value
    if isinstance(caught, BaseExceptionGroup):
        assert caught.exceptions == (error,)
    else:
        assert caught is error
    assert_only_client_closed(clients)


# --- 5. errors raised by handlers --------------------------------------------


async def test_remote_builtin_error(anyio_backend: object, worker_backend: str) -> None:
    """A remote ZeroDivisionError is one, and a RemoteError showing its traceback."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            try:
                await client.send(Explode("zero"))
            except ZeroDivisionError as exc:
                error: BaseException = exc
            else:
                pytest.fail("no ZeroDivisionError")
            assert isinstance(error, RemoteError)
            assert isinstance(error, WorkerError)
            assert error.remote_type == "builtins.ZeroDivisionError"
            assert error.remote_message == "division by zero"
            assert "ZeroDivisionError" in error.remote_traceback
            assert "in explode" in error.remote_traceback
            assert error.code is None
            notes = getattr(error, "__notes__", [])
            assert any("in explode" in note for note in notes)
            printed = "".join(traceback.format_exception(error))
            assert "Remote traceback" in printed
            assert "in explode" in printed
            assert "division by zero" in printed
            await assert_serving(client, pid)


async def test_remote_oserror_keeps_errno(
    anyio_backend: object, worker_backend: str
) -> None:
    """A handler's FileNotFoundError arrives as one, with its errno as errno/code."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            with pytest.raises(FileNotFoundError) as excinfo:
                await client.send(Explode("oserror", "no such thing"))
            error = excinfo.value
            assert isinstance(error, RemoteError)
            assert isinstance(error, OSError)
            assert error.remote_type == "builtins.FileNotFoundError"
            assert "no such thing" in error.remote_message
            assert error.errno == errno.ENOENT
            assert error.code == errno.ENOENT
            await assert_serving(client, pid)


async def test_remote_custom_error(anyio_backend: object, worker_backend: str) -> None:
    """A remote custom exception is a plain RemoteError naming its qualified type."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            with pytest.raises(RemoteError) as excinfo:
                await client.send(Explode("custom", "mine"))
            error = excinfo.value
            assert type(error) is RemoteError
            assert error.remote_type == "tests.workers.host_messages.HostCustomError"
            assert error.remote_message == "mine"
            assert error.code == "E42"
            assert "HostCustomError" in error.remote_traceback
            assert "in explode" in error.remote_traceback
            await assert_serving(client, pid)


async def test_error_types_are_the_same_on_every_pairing(
    anyio_backend: object, worker_backend: str
) -> None:
    """Failing handlers give the same error types and fields on every pairing."""
    expected = [
        ("zero", "RemoteZeroDivisionError", "builtins.ZeroDivisionError", None),
        ("oserror", "RemoteFileNotFoundError", "builtins.FileNotFoundError", 2),
        ("custom", "RemoteError", "tests.workers.host_messages.HostCustomError", "E42"),
    ]
    seen = []
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            for kind, *_ in expected:
                with pytest.raises(RemoteError) as excinfo:
                    await client.send(Explode(kind))
                error = excinfo.value
                seen.append((kind, type(error).__name__, error.remote_type, error.code))
    assert seen == expected


# --- 6. timeouts ------------------------------------------------------------------


async def test_message_timeout(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """Timeouts.message gives WorkerTimeoutError and cancels the remote handler."""
    slow = tmp_path / "slow"
    with anyio.fail_after(GUARD):
        async with host_worker(
            worker_backend, timeouts=Timeouts(message=0.3)
        ) as client:
            pid = client.pid
            start = anyio.current_time()
            with pytest.raises(WorkerTimeoutError) as excinfo:
                await client.send(Block(str(slow)))
            elapsed = anyio.current_time() - start
            assert isinstance(excinfo.value, TimeoutError)
            assert 0.25 <= elapsed < 2.0
            await assert_block_cancelled(client, slow, pid)


async def test_per_message_timeout_overrides_message(
    anyio_backend: object, worker_backend: str
) -> None:
    """Timeouts.per_message sets the limit of its class; others keep ``message``."""
    timeouts = Timeouts(message=0.3, per_message={Nap: 20})
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend, timeouts=timeouts) as client:
            assert await client.send(Nap(0.6)) == "rested"
            with pytest.raises(WorkerTimeoutError):
                await client.send(Hold())
            await active_handlers(client, 0)


async def test_timeouts_shorthand(anyio_backend: object, worker_backend: str) -> None:
    """``timeouts=N`` means N seconds for startup, connect and message alike."""
    assert Timeouts.coerce(30) == Timeouts(startup=30, connect=30, message=30)
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend, timeouts=1.5) as client:
            start = anyio.current_time()
            with pytest.raises(WorkerTimeoutError, match=re.escape("within 1.5 s")):
                await client.send(Hold())
            assert 1.4 <= anyio.current_time() - start < 3.5
            await active_handlers(client, 0)


# --- 7. cancellation -----------------------------------------------------------


async def test_cancelled_send_cancels_the_handler(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """A send cancelled by move_on_after returns and cancels its handler."""
    slow = tmp_path / "cancelled"
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            start = anyio.current_time()
            with anyio.move_on_after(0.3) as scope:
                await client.send(Block(str(slow)))
            assert scope.cancelled_caught
            assert anyio.current_time() - start < 1.5
            await assert_block_cancelled(client, slow, pid)


async def test_mass_cancel(anyio_backend: object, worker_backend: str) -> None:
    """100 sends cancelled at once return promptly and cancel their 100 handlers."""
    results: dict[int, Echoed] = {}

    async def echo(client: WorkerClient, i: int) -> None:
        results[i] = await client.send(Echo(i))

    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as holders:
                        for _ in range(100):
                            holders.start_soon(client.send, Hold())
                        await active_handlers(client, 100)
                        start = anyio.current_time()
                        scope.cancel()
                assert anyio.current_time() - start < 1.0
                for i in range(50):
                    tg.start_soon(echo, client, i)
            await active_handlers(client, 0)
            assert results == {i: Echoed(i) for i in range(50)}
            await assert_serving(client, pid)


async def test_late_reply_is_dropped(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """A reply arriving after its send was cancelled is counted and dropped."""
    stall = tmp_path / "stall"
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            assert client.late_replies == 0
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.send, Stall(str(stall)))
                    await wait_for_file(marker(stall, "entered"))
                    scope.cancel()
            marker(stall, "release").write_bytes(b"")
            # The worker answers in order: the stalled reply precedes this one.
            assert await client.send(Echo(9)) == Echoed(9)
            assert client.late_replies == 1
            await assert_serving(client, pid)


@pytest.mark.parametrize(
    "transport", [UnixSocketTransport(), PipeTransport()], ids=["socket", "pipe"]
)
async def test_a_timeout_takes_effect_while_the_worker_does_not_read(
    anyio_backend: object,
    worker_backend: str,
    transport: UnixSocketTransport | PipeTransport,
    tmp_path: Path,
) -> None:
    """API.md 8: with the worker held in a sync handler (reading nothing), a
    6 MiB request under move_on_after(0.5) gives up on time, as does a small one
    queued behind it; the worker is released only then, and afterwards the same
    connection answers big and small requests correctly."""
    stall = tmp_path / "stall"
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB
    with anyio.fail_after(GUARD):
        async with (
            host_worker(worker_backend, transport=transport) as client,
            anyio.create_task_group() as tg,
        ):
            pid = client.pid
            stalled: list[str] = []

            async def stall_worker() -> None:
                stalled.append(await client.send(Stall(str(stall))))

            tg.start_soon(stall_worker)
            await wait_for_file(marker(stall, "entered"))
            with anyio.move_on_after(0.5) as big_call:
                await client.send(Echo(1, big))
            with anyio.move_on_after(0.5) as small_call:
                await client.send(Echo(2, b"small"))
            # Had either waited on the worker, the guard would have fired first:
            # it is released only now.
            assert big_call.cancelled_caught
            assert small_call.cancelled_caught
            marker(stall, "release").write_bytes(b"")
            assert await client.send(Echo(3, big)) == Echoed(3, big)
            assert await client.send(Echo(4, b"small")) == Echoed(4, b"small")
            assert stalled == ["released"]
            await assert_serving(client, pid)


async def test_send_cancelled_before_it_starts_writes_nothing(
    anyio_backend: object, worker_backend: str
) -> None:
    """A send in an already cancelled scope reaches no handler in the worker."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.send(Store(98))
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.send(Record(99))
            assert await client.send(Records()) == []
            await assert_serving(client, client.pid)


# --- 8. oversized messages ------------------------------------------------------


async def test_oversized_messages(anyio_backend: object, worker_backend: str) -> None:
    """Oversized messages and results raise ProtocolError for that call only."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend, **SMALL_FRAMES) as client:
            pid = client.pid
            with pytest.raises(ProtocolError):
                await client.send(Store(1, b"x" * 4096))
            with pytest.raises(ProtocolError):
                await client.send(Store(2, b"y" * 4096))
            assert await client.send(Store(3, b"small")) == 5
            assert await client.send(Records()) == [3]  # 1 and 2 never reached it
            with pytest.raises(ProtocolError):
                await client.send(Big(4096))
            assert client.is_active
            assert await client.send(Big(100)) == b"x" * 100
            await assert_serving(client, pid)


async def test_oversized_error_reply_fails_that_call_only(
    anyio_backend: object, worker_backend: str
) -> None:
    """A handler error over the worker's frame limit fails that call only."""
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend, **SMALL_FRAMES) as client:
            pid = client.pid
            with pytest.raises((ValueError, ProtocolError)):
                await client.send(Explode("long", "e"))
            await assert_serving(client, pid)


# --- 9. startup data -------------------------------------------------------------


STARTUP_CONFIG = StartupConfig("cfg", Inner(3, ["a", "b"]), b"\x00\x01\xfe\xff")
STARTUP_PLAIN: dict[str, Any] = {
    "int": 1,
    "float": 2.5,
    "text": "héllo",
    "none": None,
    "flag": True,
    "list": [1, "two", [3.0]],
    "nested": {"deeper": {"deepest": [None, False]}},
}


async def test_startup_data(anyio_backend: object, worker_backend: str) -> None:
    """Startup data of dicts, nested attrs and bytes reaches the worker intact."""
    bundle = StartupBundle(plain=STARTUP_PLAIN, config=STARTUP_CONFIG, blob=b"\xffraw")
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend, startup_data=bundle) as client:
            raw = await client.send(GetStartupRaw())
            assert raw["plain"] == STARTUP_PLAIN
            assert raw["config"]["name"] == "cfg"
            assert raw["config"]["inner"] == {"level": 3, "tags": ["a", "b"]}
            report = await client.send(GetStartupAs())
    assert report == StartupReport(
        bundle=bundle,
        blob_type="bytes",
        config_blob_type="bytes",
        inner_type="Inner",
    )


async def test_get_startup_data_outside_a_worker(
    anyio_backend: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_startup_data() in a process that is not a worker raises RuntimeError."""
    monkeypatch.delenv("ISOLATED_WORKERS_BOOTSTRAP_FD", raising=False)
    with pytest.raises(RuntimeError, match="not in a worker"):
        get_startup_data()
    with pytest.raises(RuntimeError, match="not in a worker"):
        get_startup_data(as_type=StartupConfig)


# --- 10. crash basics --------------------------------------------------------------


async def test_sigkill_with_requests_in_flight(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """SIGKILL fails 5 in-flight requests with WorkerCrashedError(SIGKILL)."""
    blocks = [tmp_path / f"block{i}" for i in range(5)]
    with anyio.fail_after(GUARD):
        async with host_worker(worker_backend) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                errors = await start_blocks(tg, client, blocks, WorkerCrashedError)
                os.kill(pid, signal.SIGKILL)
            assert len(errors) == 5
            assert len({id(e) for e in errors}) == 5
            for error in errors:
                assert error.reason == Exited(code=None, signal=signal.SIGKILL)
                assert error.message_type == "Block"
                assert "signal SIGKILL" in str(error)
            assert client.state is WorkerState.CRASHED
            assert not client.is_active
            with anyio.fail_after(1):
                await assert_sends_fail(client, WorkerCrashedError)
    assert_reaped(pid)


# --- 11. close escalation -----------------------------------------------------------


async def test_close_escalates_to_sigkill(
    anyio_backend: object,
    worker_backend: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aclose() escalates to SIGKILL on a worker ignoring shutdown and SIGTERM."""
    hung = tmp_path / "hung"
    with anyio.fail_after(GUARD):
        async with hung_worker(worker_backend, hung) as client:
            pid = client.pid
            start = anyio.current_time()
            await client.aclose()
            elapsed = anyio.current_time() - start
            assert client.state is WorkerState.CLOSED
            assert_reaped(pid)
    assert 0.5 <= elapsed < 2.0
    assert "SIGKILL" in caplog.text


async def test_cancelled_aclose_still_reaps(
    anyio_backend: object, worker_backend: str, tmp_path: Path
) -> None:
    """Cancelling the task running aclose() still leaves the worker reaped."""
    hung = tmp_path / "hung"
    with anyio.fail_after(GUARD):
        async with hung_worker(worker_backend, hung) as client:
            pid = client.pid
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.aclose)
                await wait_until(
                    lambda: client.state is not WorkerState.READY, "aclose to start"
                )
                tg.cancel_scope.cancel()
            assert client.state is WorkerState.CLOSED
            assert_reaped(pid)
