"""The client's own logic, on the in-process worker: no process, no file, no poll.

Timeouts, cancellation, frame limits and error replies are decided
on the host; a worker process adds nothing to them but start-up time, so these
tests serve the handlers in the test's own event loop
(`isolated_workers.testing.open_in_process_worker`) and meet them through
events. On Trio they run on the autojump clock: a 1.5 s timeout takes no time.
What does need a process, on every pairing and transport, is in test_host.py.
"""

from __future__ import annotations

import errno
import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from isolated_workers import (
    ProtocolError,
    RemoteError,
    Timeouts,
    WorkerClient,
    WorkerError,
    WorkerState,
    WorkerTimeoutError,
)
from isolated_workers.testing import open_in_process_worker
from tests._util import GUARD, HAVE_TRIO
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import (
    Big,
    Count,
    Echo,
    Echoed,
    Fail,
    Hold,
    Messages,
    Ping,
    Recall,
    Remember,
    Running,
    Sleep,
    Store,
)

pytestmark = pytest.mark.anyio

_BACKENDS = [pytest.param("asyncio", id="asyncio")]
if HAVE_TRIO:
    _BACKENDS.append(pytest.param("trio", id="trio-autojump"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """asyncio in debug mode, and Trio on a fresh autojump clock."""
    if request.param == "asyncio":
        return ("asyncio", {"debug": True})
    import trio.testing

    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


class Worker:
    """The handlers of the plain contract, in memory: tests await their events."""

    def __init__(self) -> None:
        self.records: list[int] = []
        self.holding = 0
        self.entered = anyio.Event()
        self.exited = anyio.Event()

    def handlers(self) -> dict[type, Callable[[Any], Any]]:
        async def echo(msg: Echo) -> Echoed:
            return Echoed(msg.value, msg.data)

        def store(msg: Store) -> int:
            self.records.append(msg.value)
            return len(msg.data)

        async def hold(msg: Hold) -> int:
            self.holding += 1
            self.entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                self.holding -= 1
                self.exited.set()
            return msg.value

        def unused(msg: object) -> None:
            raise AssertionError(f"not served in process: {msg!r}")

        served: dict[type, Callable[[Any], Any]] = {
            Echo: echo,
            Store: store,
            Remember: lambda msg: self.records.append(msg.value),
            Recall: lambda msg: self.records,
            Ping: lambda msg: 0,
            Hold: hold,
            Running: lambda msg: self.holding,
            Sleep: HANDLERS[Sleep],  # the plain worker's: they keep no state
            Fail: HANDLERS[Fail],
            Big: lambda msg: b"x" * msg.size,
        }
        # No other message is sent in process; a stream handler must still be
        # an async generator, so Count keeps the plain worker's.
        return dict.fromkeys(HANDLERS, unused) | {Count: HANDLERS[Count]} | served

    def open(self, **options: Any) -> Any:
        return open_in_process_worker(Messages, self.handlers(), **options)


async def assert_serving(client: WorkerClient) -> None:
    assert client.state is WorkerState.READY
    assert await client.send(Echo(41, b"ok")) == Echoed(41, b"ok")


# --- checkpoints ------------------------------------------------------------------


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
        async with Worker().open() as client, anyio.create_task_group() as tg:
            await tg.start(sibling)
            # Trio runs a batch of ready tasks in a random order, so the sibling
            # may come before or after the sender: count, do not expect 200.
            assert await interleavings(lambda i: client.send(Remember(i))) >= 50
            assert await interleavings(lambda i: client.send(Ping())) >= 50
            tg.cancel_scope.cancel()


# --- errors raised by handlers ------------------------------------------------------


async def test_remote_builtin_error(anyio_backend: object) -> None:
    """A remote ZeroDivisionError is one, and a RemoteError showing its traceback."""
    with anyio.fail_after(GUARD):
        async with Worker().open() as client:
            with pytest.raises(ZeroDivisionError) as info:
                await client.send(Fail("zero"))
            error = info.value
            assert isinstance(error, RemoteError)
            assert isinstance(error, WorkerError)
            assert error.remote_type == "builtins.ZeroDivisionError"
            assert error.remote_message == "division by zero"
            assert "in fail" in error.remote_traceback
            assert error.code is None
            assert any("in fail" in note for note in error.__notes__)
            printed = "".join(traceback.format_exception(error))
            assert "Remote traceback" in printed
            assert "division by zero" in printed
            await assert_serving(client)


async def test_remote_oserror_keeps_errno(anyio_backend: object) -> None:
    """A handler's FileNotFoundError arrives as one, with its errno as errno/code."""
    with anyio.fail_after(GUARD):
        async with Worker().open() as client:
            with pytest.raises(FileNotFoundError) as info:
                await client.send(Fail("oserror", "no such thing"))
            error = info.value
            assert isinstance(error, RemoteError)
            assert error.remote_type == "builtins.FileNotFoundError"
            assert "no such thing" in error.remote_message
            assert error.errno == error.code == errno.ENOENT
            await assert_serving(client)


async def test_remote_custom_error(anyio_backend: object) -> None:
    """A remote custom exception is a plain RemoteError naming its qualified type."""
    with anyio.fail_after(GUARD):
        async with Worker().open() as client:
            with pytest.raises(RemoteError) as info:
                await client.send(Fail("custom", "mine"))
            error = info.value
            assert type(error) is RemoteError
            assert error.remote_type == "tests.workers.messages.CustomError"
            assert error.remote_message == "mine"
            assert error.code == "E42"
            assert "CustomError" in error.remote_traceback
            await assert_serving(client)


# --- timeouts -------------------------------------------------------------------------


async def test_message_timeout(anyio_backend: object) -> None:
    """Timeouts.message gives WorkerTimeoutError and cancels the remote handler."""
    worker = Worker()
    with anyio.fail_after(GUARD):
        async with worker.open(timeouts=Timeouts(message=0.3)) as client:
            start = anyio.current_time()
            with pytest.raises(WorkerTimeoutError) as info:
                await client.send(Hold())
            assert isinstance(info.value, TimeoutError)
            assert 0.3 <= anyio.current_time() - start < 2.0
            assert worker.entered.is_set()
            await worker.exited.wait()
            await assert_serving(client)


async def test_per_message_timeout_overrides_message(anyio_backend: object) -> None:
    """Timeouts.per_message sets the limit of its class; others keep ``message``."""
    worker = Worker()
    timeouts = Timeouts(message=0.3, per_message={Sleep: 20})
    with anyio.fail_after(GUARD):
        async with worker.open(timeouts=timeouts) as client:
            assert await client.send(Sleep(0.6)) == "slept"
            with pytest.raises(WorkerTimeoutError):
                await client.send(Hold())
            await anyio.wait_all_tasks_blocked()
            assert await client.send(Running()) == 0


async def test_timeouts_shorthand(anyio_backend: object) -> None:
    """``timeouts=N`` means N seconds for startup, connect and message alike."""
    assert Timeouts.coerce(30) == Timeouts(startup=30, connect=30, message=30)
    with anyio.fail_after(GUARD):
        async with Worker().open(timeouts=1.5) as client:
            start = anyio.current_time()
            with pytest.raises(WorkerTimeoutError, match=re.escape("within 1.5 s")):
                await client.send(Hold())
            assert 1.5 <= anyio.current_time() - start < 3.5


# --- cancellation --------------------------------------------------------------------


async def test_cancelled_send_cancels_the_handler(anyio_backend: object) -> None:
    """A send cancelled by move_on_after returns at once and cancels its handler."""
    worker = Worker()
    with anyio.fail_after(GUARD):
        async with worker.open() as client:
            start = anyio.current_time()
            with anyio.move_on_after(0.3) as scope:
                await client.send(Hold())
            assert scope.cancelled_caught
            assert anyio.current_time() - start < 1.5
            await worker.exited.wait()
            await assert_serving(client)


async def test_mass_cancel(anyio_backend: object) -> None:
    """100 sends cancelled at once return at once and cancel their 100 handlers;
    the connection serves on."""
    worker = Worker()
    results: dict[int, Echoed] = {}

    async def echo(client: WorkerClient, i: int) -> None:
        results[i] = await client.send(Echo(i))

    with anyio.fail_after(GUARD):
        async with worker.open() as client:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as holders:
                        for _ in range(100):
                            holders.start_soon(client.send, Hold())
                        await anyio.wait_all_tasks_blocked()
                        assert worker.holding == 100
                        scope.cancel()
                for i in range(50):
                    tg.start_soon(echo, client, i)
            await anyio.wait_all_tasks_blocked()
            assert worker.holding == 0
            assert results == {i: Echoed(i) for i in range(50)}
            await assert_serving(client)


async def test_send_cancelled_before_it_starts_writes_nothing(
    anyio_backend: object,
) -> None:
    """A send in an already cancelled scope reaches no handler in the worker."""
    worker = Worker()
    with anyio.fail_after(GUARD):
        async with worker.open() as client:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.send(Store(98))
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.send(Remember(99))
            assert await client.send(Recall()) == []
            await assert_serving(client)


# --- frame limits ---------------------------------------------------------------------


async def test_oversized_messages(anyio_backend: object) -> None:
    """Oversized messages and results raise ProtocolError for that call only."""
    with anyio.fail_after(GUARD):
        async with Worker().open(max_frame_size=1024) as client:
            with pytest.raises(ProtocolError):
                await client.send(Store(1, b"x" * 4096))
            with pytest.raises(ProtocolError):
                await client.send(Store(2, b"y" * 4096))
            assert await client.send(Store(3, b"small")) == 5
            assert await client.send(Recall()) == [3]  # 1 and 2 never reached it
            with pytest.raises(ProtocolError):
                await client.send(Big(4096))
            assert client.is_active
            assert await client.send(Big(100)) == b"x" * 100
            await assert_serving(client)


async def test_oversized_error_reply_fails_that_call_only(
    anyio_backend: object,
) -> None:
    """A handler error over the worker's frame limit fails that call only."""
    with anyio.fail_after(GUARD):
        async with Worker().open(max_frame_size=1024) as client:
            with pytest.raises((ValueError, ProtocolError)):
                await client.send(Fail("long", "e"))
            await assert_serving(client)
